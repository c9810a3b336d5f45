import type { JsonObject, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { AuthService, TokenPairSchema, UserSchema } from "../../gen/auth/v1/auth_pb.js";
import type { Accounts } from "../accounts/accounts.js";
import type { User } from "../accounts/user.js";
import { AuthError } from "../auth-error.js";
import { type AccessTokenVerifier, bearerToken } from "../tokens/access-tokens.js";
import type { Sessions, TokenPair } from "../tokens/refresh-sessions.js";
import type { RevocationList } from "../tokens/revocations.js";
import type { ServiceHandlers } from "./handler.js";

export interface AuthHandlersOptions {
  accounts: Accounts;
  sessions: Sessions;
  /** Checks signature, claims and revocation (from memory). */
  verifyAccessToken: AccessTokenVerifier;
  revocations: RevocationList;
  /** The RFC 7517 JWK Set of the verification keys. */
  jwksJson: string;
}

function userMessage(user: User): MessageInitShape<typeof UserSchema> {
  return {
    id: user.id,
    username: user.username,
    email: user.email,
    phoneNumber: user.phoneNumber ?? "",
    firstName: user.firstName,
    lastName: user.lastName,
    createTime: timestampFromDate(user.createTime),
  };
}

function tokenPairMessage(pair: TokenPair): MessageInitShape<typeof TokenPairSchema> {
  return {
    accessToken: pair.accessToken,
    accessTokenExpireTime: timestampFromDate(pair.accessTokenExpireTime),
    refreshToken: pair.refreshToken,
    refreshTokenExpireTime: timestampFromDate(pair.refreshTokenExpireTime),
    tokenType: "Bearer",
  };
}

/** The AuthService RPCs: request → domain call → response, nothing more. */
export function createAuthHandlers(
  options: AuthHandlersOptions,
): ServiceHandlers<typeof AuthService> {
  const { accounts, sessions, verifyAccessToken, revocations, jwksJson } = options;
  return {
    async signUp(request) {
      return { user: userMessage(await accounts.signUp(request)) };
    },

    async login(request) {
      const user = await accounts.authenticate(request.identifier, request.password);
      return { user: userMessage(user), tokens: tokenPairMessage(await sessions.start(user)) };
    },

    async refresh(request) {
      return { tokens: tokenPairMessage(await sessions.refresh(request.refreshToken)) };
    },

    async verify(request, context) {
      const token = request.accessToken || bearerToken(context.requestHeader("authorization"));
      if (!token) {
        throw new AuthError(
          "TOKEN_INVALID",
          "no access token in the request or its authorization header",
        );
      }
      const verified = verifyAccessToken(token);
      return {
        userId: verified.userId,
        username: verified.username,
        email: verified.email,
        phoneNumber: verified.phoneNumber ?? "",
        sessionId: verified.sessionId,
        issueTime: timestampFromDate(verified.issueTime),
        expireTime: timestampFromDate(verified.expireTime),
        // A verified JWT payload is parsed JSON.
        claims: verified.claims as JsonObject,
      };
    },

    async logout(request) {
      await sessions.logout(request.refreshToken, request.allSessions);
      return {};
    },

    async getJwks() {
      return { jwksJson };
    },

    async *watchRevocations(_request, context) {
      for await (const update of revocations.watch(context.signal)) {
        yield {
          sessionIds: update.sessionIds,
          revokeTime: timestampFromDate(update.revokeTime),
          snapshot: update.snapshot,
        };
      }
    },
  };
}

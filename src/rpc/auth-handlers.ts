import { create, type JsonObject, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type AuthService,
  GetJwksResponseSchema,
  type TokenPairSchema,
  type UserSchema,
  type VerifyResponse,
  VerifyResponseSchema,
} from "../../gen/auth/v1/auth_pb.js";
import type { Accounts } from "../accounts/accounts.js";
import type { User } from "../accounts/user.js";
import type { Caller } from "../audit-log.js";
import { AuthError } from "../auth-error.js";
import {
  type AccessTokenVerifier,
  bearerToken,
  type VerifiedAccessToken,
} from "../tokens/access-tokens.js";
import type { Sessions, TokenPair } from "../tokens/refresh-sessions.js";
import type { RevocationList } from "../tokens/revocations.js";
import { clientAddress } from "./client-address.js";
import type { CallContext, ServiceHandlers } from "./handler.js";

export interface AuthHandlersOptions {
  accounts: Accounts;
  sessions: Sessions;
  /** Checks signature, claims and revocation (from memory). */
  verifyAccessToken: AccessTokenVerifier;
  revocations: RevocationList;
  /** The RFC 7517 JWK Set of the verification keys. */
  jwksJson: string;
  /** Take the client address from `x-forwarded-for` (TRUST_PROXY). */
  trustProxy: boolean;
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
  const { accounts, sessions, verifyAccessToken, revocations, jwksJson, trustProxy } = options;
  const caller = (context: CallContext): Caller => ({
    clientAddress: clientAddress(context, trustProxy),
    // Read only by what may wait (the hash queue): the gRPC adapter makes a call's signal
    // when first asked, and a Refresh or Logout never asks.
    get signal() {
      return context.signal;
    },
  });
  // A token's answer depends on the token alone. Built once per verified token (a cached
  // token comes back as the same object), so the gRPC adapter encodes it once too: the
  // claims Struct costs protobuf-es ~20 µs to encode.
  const verifyResponses = new WeakMap<VerifiedAccessToken, VerifyResponse>();
  const jwksResponse = create(GetJwksResponseSchema, { jwksJson });
  return {
    async signUp(request, context) {
      return { user: userMessage(await accounts.signUp(request, caller(context))) };
    },

    async login(request, context) {
      const who = caller(context);
      const user = await accounts.authenticate(request.identifier, request.password, who);
      return { user: userMessage(user), tokens: tokenPairMessage(await sessions.start(user, who)) };
    },

    async refresh(request, context) {
      return {
        tokens: tokenPairMessage(await sessions.refresh(request.refreshToken, caller(context))),
      };
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
      let response = verifyResponses.get(verified);
      if (response === undefined) {
        response = create(VerifyResponseSchema, {
          userId: verified.userId,
          username: verified.username,
          email: verified.email,
          phoneNumber: verified.phoneNumber ?? "",
          sessionId: verified.sessionId,
          issueTime: timestampFromDate(verified.issueTime),
          expireTime: timestampFromDate(verified.expireTime),
          // A verified JWT payload is parsed JSON.
          claims: verified.claims as JsonObject,
        });
        verifyResponses.set(verified, response);
      }
      return response;
    },

    async logout(request, context) {
      await sessions.logout(request.refreshToken, request.allSessions, caller(context));
      return {};
    },

    async getJwks() {
      return jwksResponse;
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

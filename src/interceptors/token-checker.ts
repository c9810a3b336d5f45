import type { JsonObject } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { AuthError, type AuthErrorReason } from "../auth-error.js";
import type { Clock } from "../clock.js";
import {
  type AccessTokenVerifier,
  accessTokenKeyId,
  bearerToken,
  createAccessTokenVerifier,
  type VerifiedAccessToken,
  withRevocationCheck,
} from "../tokens/access-tokens.js";
import { createJwksCache } from "./jwks-cache.js";
import { createRevocationWatcher } from "./revocation-watcher.js";

/** Who made a call: the verified claims of its access token. */
export type Principal = VerifiedAccessToken;

/**
 * How tokens are checked. `local` (the default) verifies signatures against the JWK Set
 * from GetJwks and refuses revoked sessions known from WatchRevocations: no call per
 * request. `remote` calls Verify for every request.
 */
export type VerificationMode = "local" | "remote";

export interface TokenCheckerOptions {
  /**
   * How to reach the auth service's gRPC port, e.g.
   * `createGrpcTransport({ baseUrl: "http://auth-service:50051" })` from @connectrpc/connect-node.
   */
  transport: Transport;
  /** Default `local`. */
  mode?: VerificationMode;
  /** Required `iss`; default `auth-service` (the service's JWT_ISSUER default). */
  issuer?: string;
  /** Required `aud`; default `internal` (the service's JWT_AUDIENCE default). */
  audience?: string;
  /** Leeway for exp/nbf/iat in ms; default 30 s, at most 30 s. */
  clockToleranceMs?: number;
  /** An unknown kid refetches the JWK Set at most this often; default 5 s. */
  jwksMinRefetchIntervalMs?: number;
  /** How long a revoked session is remembered; default 1 h (longer than any access token). */
  revocationRetentionMs?: number;
  /** Stops the background work (the WatchRevocations stream). */
  signal?: AbortSignal;
  /** Told of background failures (JWKS fetch, revocation stream); default: ignored. */
  onError?: (error: unknown) => void;
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: Clock;
}

/** Checks the bearer token of a call; shared by the Connect and grpc-js interceptors. */
export interface TokenChecker {
  /**
   * The principal of an `authorization` header value. Throws AuthError (TOKEN_INVALID,
   * TOKEN_EXPIRED, SESSION_REVOKED, or UNAVAILABLE when the auth service cannot be asked).
   */
  check(authorization: string | undefined): Promise<Principal>;
  /** Local mode: resolves once the keys and the first revocation snapshot arrived. */
  ready(): Promise<void>;
}

const MAX_CLOCK_TOLERANCE_MS = 30_000;

/** The ErrorInfo reason of an error the auth service answered, as an AuthError. */
function remoteFailure(error: unknown): AuthError {
  const connectError = ConnectError.from(error);
  const reason = connectError.findDetails(ErrorInfoSchema)[0]?.reason;
  if (
    connectError.code === Code.Unauthenticated &&
    (reason === "TOKEN_INVALID" || reason === "TOKEN_EXPIRED" || reason === "SESSION_REVOKED")
  ) {
    return new AuthError(reason satisfies AuthErrorReason, connectError.rawMessage);
  }
  return new AuthError("UNAVAILABLE", "the auth service cannot verify the token", {
    cause: error,
  });
}

/** Creates a token checker; in local mode it starts fetching keys and watching revocations. */
export function createTokenChecker(options: TokenCheckerOptions): TokenChecker {
  const clock = options.clock ?? Date.now;
  const onError = options.onError ?? (() => {});
  const client = createClient(AuthService, options.transport);

  if (options.mode === "remote") {
    return {
      async check(authorization) {
        const token = bearerToken(authorization);
        if (token === undefined) {
          throw new AuthError("TOKEN_INVALID", "no bearer token in the authorization header");
        }
        let response: Awaited<ReturnType<typeof client.verify>>;
        try {
          response = await client.verify({ accessToken: token });
        } catch (error) {
          throw remoteFailure(error);
        }
        return {
          userId: response.userId,
          username: response.username,
          email: response.email,
          phoneNumber: response.phoneNumber || undefined,
          sessionId: response.sessionId,
          issueTime: response.issueTime ? timestampDate(response.issueTime) : new Date(0),
          expireTime: response.expireTime ? timestampDate(response.expireTime) : new Date(0),
          claims: (response.claims ?? {}) as JsonObject,
        };
      },
      ready: () => Promise.resolve(),
    };
  }

  const keys = createJwksCache({
    fetchJwks: async () => (await client.getJwks({})).jwksJson,
    minRefetchIntervalMs: options.jwksMinRefetchIntervalMs ?? 5_000,
    clock,
    onError,
  });
  const revocations = createRevocationWatcher({
    watch: (signal) => client.watchRevocations({}, { signal }),
    retentionMs: options.revocationRetentionMs ?? 60 * 60_000,
    minBackoffMs: 100,
    maxBackoffMs: 10_000,
    clock,
    signal: options.signal,
    onError,
  });
  const verify: AccessTokenVerifier = withRevocationCheck(
    createAccessTokenVerifier({
      findKey: keys.find,
      issuer: options.issuer ?? "auth-service",
      audience: options.audience ?? "internal",
      clockToleranceMs: Math.min(options.clockToleranceMs ?? 30_000, MAX_CLOCK_TOLERANCE_MS),
      clock,
    }),
    revocations.isRevoked,
  );
  const keysLoaded = keys.refresh();

  return {
    async check(authorization) {
      const token = bearerToken(authorization);
      if (token === undefined) {
        throw new AuthError("TOKEN_INVALID", "no bearer token in the authorization header");
      }
      const kid = accessTokenKeyId(token);
      if (kid !== undefined && keys.find(kid) === undefined) {
        // A key published after our last fetch (a rotation), or a forged kid: the refetch
        // interval bounds what the latter can cost.
        await keys.refresh();
      }
      return verify(token);
    },
    async ready() {
      await keysLoaded;
      await revocations.ready;
    },
  };
}

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { AuthService, type TokenPair } from "../../gen/auth/v1/auth_pb.js";
import type { Clock } from "../clock.js";

export interface TokenRefresherOptions {
  /** How to reach the auth service (for Refresh). */
  transport: Transport;
  /** The tokens of a Login (or a Refresh). */
  tokens: TokenPair;
  /** A token this close to its expiry is refreshed before use; default 30 s. */
  refreshBeforeExpiryMs?: number;
  /** Told of each new pair, e.g. to store the rotated refresh token. */
  onTokens?: (tokens: TokenPair) => void;
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: Clock;
}

/** Hands out a current access token for outgoing calls. */
export interface AccessTokenSource {
  /** The access token, refreshed first when it is about to expire. */
  accessToken(): Promise<string>;
}

const expiry = (tokens: TokenPair) =>
  tokens.accessTokenExpireTime ? timestampDate(tokens.accessTokenExpireTime).getTime() : 0;

/**
 * Keeps an access token fresh: shortly before it expires, the next caller triggers one
 * Refresh that every concurrent caller waits for (one refresh in flight; refresh tokens
 * rotate, so two would revoke the session as reuse). When a refresh fails while the old
 * token is still valid, the old one is used and the next call tries again.
 */
export function createTokenRefresher(options: TokenRefresherOptions): AccessTokenSource {
  const client = createClient(AuthService, options.transport);
  const clock = options.clock ?? Date.now;
  const margin = options.refreshBeforeExpiryMs ?? 30_000;
  let tokens = options.tokens;
  let inFlight: Promise<TokenPair> | undefined;

  function refresh(): Promise<TokenPair> {
    inFlight ??= client
      .refresh({ refreshToken: tokens.refreshToken })
      .then((response) => {
        if (response.tokens === undefined) {
          throw new Error("Refresh returned no tokens");
        }
        tokens = response.tokens;
        options.onTokens?.(tokens);
        return tokens;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  }

  return {
    async accessToken() {
      if (expiry(tokens) - clock() > margin) {
        return tokens.accessToken;
      }
      try {
        return (await refresh()).accessToken;
      } catch (error) {
        if (expiry(tokens) > clock()) {
          return tokens.accessToken;
        }
        throw error;
      }
    },
  };
}

/** A Connect client interceptor that sends `authorization: Bearer <access token>`. */
export function createBearerInterceptor(source: AccessTokenSource): Interceptor {
  return (next) => async (request) => {
    request.header.set("authorization", `Bearer ${await source.accessToken()}`);
    return next(request);
  };
}

/**
 * A grpc-js client interceptor that sends `authorization: Bearer <access token>`:
 * `new Client(address, credentials, { interceptors: [createGrpcBearerInterceptor(source)] })`.
 */
export function createGrpcBearerInterceptor(source: AccessTokenSource): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        source.accessToken().then(
          (token) => {
            metadata.set("authorization", `Bearer ${token}`);
            next(metadata, listener);
          },
          (error: unknown) => {
            listener.onReceiveStatus?.({
              code: grpc.status.UNAUTHENTICATED,
              details: `no access token: ${error instanceof Error ? error.message : String(error)}`,
              metadata: new grpc.Metadata(),
            });
          },
        );
      },
    });
}

import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import {
  type HeaderMap,
  HeaderValueOption_HeaderAppendAction,
  type HeaderValueOptionSchema,
} from "../../gen/envoy/config/core/v3/base_pb.js";
import type { Authorization } from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { StatusCode } from "../../gen/envoy/type/v3/http_status_pb.js";
import { AuthError } from "../auth-error.js";
import { type AccessTokenVerifier, bearerToken } from "../tokens/access-tokens.js";
import type { ServiceHandlers } from "./handler.js";

export interface EnvoyAuthorizationOptions {
  /** Checks signature, claims and revocation (from memory). */
  verifyAccessToken: AccessTokenVerifier;
}

/** RFC 6750 §3: what a client whose bearer token was refused is told. */
export const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token"';

/** Request headers set on an allowed request, replacing any the client sent. */
function setHeader(key: string, value: string): MessageInitShape<typeof HeaderValueOptionSchema> {
  return {
    header: { key, value },
    appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
  };
}

/** The authorization header from `headers`, or from `header_map` when Envoy sends raw ones. */
function authorizationHeader(
  headers: Record<string, string> | undefined,
  headerMap: HeaderMap | undefined,
): string | undefined {
  const fromMap = headers?.authorization;
  if (fromMap !== undefined) {
    return fromMap;
  }
  const raw = headerMap?.headers.find((header) => header.key.toLowerCase() === "authorization");
  if (raw === undefined) {
    return undefined;
  }
  return raw.value || Buffer.from(raw.rawValue).toString("latin1");
}

/**
 * Envoy's ext_authz `envoy.service.auth.v3.Authorization/Check`: allowed requests go
 * upstream with x-auth-user-id, x-auth-username and x-auth-session-id; a missing, invalid,
 * expired or revoked token is answered 401 with an RFC 6750 challenge.
 */
export function createEnvoyAuthorizationHandlers(
  options: EnvoyAuthorizationOptions,
): ServiceHandlers<typeof Authorization> {
  const { verifyAccessToken } = options;
  return {
    async check(request) {
      const http = request.attributes?.request?.http;
      try {
        const token = bearerToken(authorizationHeader(http?.headers, http?.headerMap));
        if (token === undefined) {
          throw new AuthError("TOKEN_INVALID", "no bearer token in the authorization header");
        }
        const verified = verifyAccessToken(token);
        return {
          // google.rpc.Code OK (0): Envoy lets the request through.
          status: { code: 0 },
          httpResponse: {
            case: "okResponse",
            value: {
              headers: [
                setHeader("x-auth-user-id", verified.userId),
                setHeader("x-auth-username", verified.username),
                setHeader("x-auth-session-id", verified.sessionId),
              ],
            },
          },
        };
      } catch (error) {
        if (!(error instanceof AuthError)) {
          throw error;
        }
        return {
          status: { code: Code.Unauthenticated, message: error.message },
          httpResponse: {
            case: "deniedResponse",
            value: {
              status: { code: StatusCode.Unauthorized },
              headers: [
                setHeader("www-authenticate", INVALID_TOKEN_CHALLENGE),
                setHeader("content-type", "application/json"),
              ],
              body: JSON.stringify({ error: "invalid_token", reason: error.reason }),
            },
          },
        };
      }
    },
  };
}

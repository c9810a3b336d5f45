import { createContextKey, type Interceptor } from "@connectrpc/connect";
import { toConnectError } from "../rpc/errors.js";
import {
  createTokenChecker,
  type Principal,
  type TokenChecker,
  type TokenCheckerOptions,
} from "./token-checker.js";

/**
 * The verified principal of a call, in the handler's context values:
 * `context.values.get(principalKey)`. Undefined on a public method.
 */
export const principalKey = createContextKey<Principal | undefined>(undefined, {
  description: "the verified access token of the call",
});

export interface AuthInterceptorOptions extends Partial<TokenCheckerOptions> {
  /**
   * A checker to share (one JWK Set cache and one revocation stream for several
   * interceptors); when absent, one is created from these options, which then need
   * `transport`.
   */
  checker?: TokenChecker;
  /** Procedures that need no token, as `/package.Service/Method`. */
  publicMethods?: readonly string[];
}

/** The checker given in the options, or a new one made from them. */
export function checkerFrom(options: AuthInterceptorOptions): TokenChecker {
  if (options.checker !== undefined) {
    return options.checker;
  }
  if (options.transport === undefined) {
    throw new Error("an auth interceptor needs either a checker or a transport");
  }
  return createTokenChecker({ ...options, transport: options.transport });
}

/**
 * The error an interceptor answers: UNAUTHENTICATED with the TOKEN_* reason in ErrorInfo.
 * Anything else (a bug) is INTERNAL, and `onError` hears of it.
 */
export function refusal(error: unknown, options: AuthInterceptorOptions) {
  return toConnectError(error, (cause) => options.onError?.(cause));
}

/**
 * A Connect server interceptor that lets a call through only with a valid
 * `authorization: Bearer <access token>`, and hands the principal to the handler under
 * `principalKey`. A refused call answers UNAUTHENTICATED with a google.rpc.ErrorInfo
 * (domain `auth.v1`, reason TOKEN_INVALID, TOKEN_EXPIRED or SESSION_REVOKED).
 */
export function createAuthInterceptor(options: AuthInterceptorOptions): Interceptor {
  const checker = checkerFrom(options);
  const publicMethods = new Set(options.publicMethods ?? []);
  return (next) => async (request) => {
    if (publicMethods.has(`/${request.service.typeName}/${request.method.name}`)) {
      return next(request);
    }
    let principal: Principal;
    try {
      principal = await checker.check(request.header.get("authorization") ?? undefined);
    } catch (error) {
      throw refusal(error, options);
    }
    request.contextValues.set(principalKey, principal);
    return next(request);
  };
}

/**
 * Token checks for services of the fleet (`auth-service/interceptors`): server interceptors
 * for Connect and grpc-js that verify access tokens, and client helpers that attach them.
 * @packageDocumentation
 */
export type { AuthErrorReason } from "../auth-error.js";
export {
  type AccessTokenSource,
  createBearerInterceptor,
  createGrpcBearerInterceptor,
  createTokenRefresher,
  type TokenRefresherOptions,
} from "./client.js";
export { type AuthInterceptorOptions, createAuthInterceptor, principalKey } from "./connect.js";
export { createGrpcAuthInterceptor, type GrpcAuthInterceptor } from "./grpc.js";
export {
  createTokenChecker,
  type Principal,
  type TokenChecker,
  type TokenCheckerOptions,
  type VerificationMode,
} from "./token-checker.js";

import * as grpc from "@grpc/grpc-js";
import { grpcErrorResponse } from "../rpc/grpc-adapter.js";
import { type AuthInterceptorOptions, checkerFrom, refusal } from "./connect.js";
import type { Principal } from "./token-checker.js";

/** A grpc-js server interceptor and the accessor for the principal it verified. */
export interface GrpcAuthInterceptor {
  /** Pass it to `new grpc.Server({ interceptors: [interceptor] })`. */
  interceptor: grpc.ServerInterceptor;
  /**
   * The verified principal of a call, from inside its handler: `principal(call)`.
   * Undefined on a public method.
   */
  principal(call: { metadata: grpc.Metadata }): Principal | undefined;
}

/**
 * A grpc-js server interceptor that lets a call through only with a valid
 * `authorization: Bearer <access token>`. A refused call ends with UNAUTHENTICATED and a
 * google.rpc.ErrorInfo (domain `auth.v1`, a TOKEN_* or SESSION_REVOKED reason) in
 * `grpc-status-details-bin`; the handler never runs.
 */
export function createGrpcAuthInterceptor(options: AuthInterceptorOptions): GrpcAuthInterceptor {
  const checker = checkerFrom(options);
  const publicMethods = new Set(options.publicMethods ?? []);
  // The handler's call.metadata is the object the interceptor passed on.
  const principals = new WeakMap<grpc.Metadata, Principal>();

  const interceptor: grpc.ServerInterceptor = (methodDescriptor, call) => {
    if (publicMethods.has(methodDescriptor.path)) {
      return new grpc.ServerInterceptingCall(call);
    }
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, passOn) {
            const [authorization] = metadata.get("authorization");
            checker.check(typeof authorization === "string" ? authorization : undefined).then(
              (principal) => {
                principals.set(metadata, principal);
                passOn(metadata);
              },
              (error: unknown) => {
                const status = grpcErrorResponse(refusal(error, options));
                call.sendStatus({
                  code: status.code ?? grpc.status.UNAUTHENTICATED,
                  details: status.details ?? "unauthenticated",
                  metadata: status.metadata ?? new grpc.Metadata(),
                });
              },
            );
          },
        });
      },
    });
  };

  return { interceptor, principal: (call) => principals.get(call.metadata) };
}

import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { anyPack, durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { AuthError, type AuthErrorReason } from "../auth-error.js";
import { isDatabaseUnavailable } from "../db/errors.js";

export const ERROR_DOMAIN = "auth.v1";

/** DESIGN.md §2: the one table from reason to status code. */
export const REASON_CODES: Record<AuthErrorReason, Code> = {
  INVALID_ARGUMENT: Code.InvalidArgument,
  USER_ALREADY_EXISTS: Code.AlreadyExists,
  INVALID_CREDENTIALS: Code.Unauthenticated,
  RATE_LIMITED: Code.ResourceExhausted,
  REFRESH_TOKEN_INVALID: Code.Unauthenticated,
  REFRESH_TOKEN_EXPIRED: Code.Unauthenticated,
  REFRESH_TOKEN_REUSED: Code.Unauthenticated,
  TOKEN_INVALID: Code.Unauthenticated,
  TOKEN_EXPIRED: Code.Unauthenticated,
  SESSION_REVOKED: Code.Unauthenticated,
  UNAVAILABLE: Code.Unavailable,
};

interface Detail<T extends DescMessage = DescMessage> {
  desc: T;
  value: MessageInitShape<T>;
}

function detail<T extends DescMessage>(desc: T, value: MessageInitShape<T>): Detail {
  return { desc, value } as Detail;
}

function authErrorToConnectError(error: AuthError): ConnectError {
  const details: Detail[] = [
    detail(ErrorInfoSchema, {
      reason: error.reason,
      domain: ERROR_DOMAIN,
      metadata: error.metadata,
    }),
  ];
  if (error.fieldViolations.length > 0) {
    details.push(detail(BadRequestSchema, { fieldViolations: error.fieldViolations }));
  }
  if (error.retryDelayMs !== undefined) {
    details.push(detail(RetryInfoSchema, { retryDelay: durationFromMs(error.retryDelayMs) }));
  }
  return new ConnectError(error.message, REASON_CODES[error.reason], undefined, details, error);
}

/**
 * Turns anything a handler threw into the error the client sees. Domain errors keep
 * their reason; an unreachable database is UNAVAILABLE; transport errors pass as they
 * are; anything else is INTERNAL with a generic message, reported to `onInternal` and
 * never sent.
 */
export function toConnectError(error: unknown, onInternal: (error: unknown) => void): ConnectError {
  if (error instanceof AuthError) {
    return authErrorToConnectError(error);
  }
  if (isDatabaseUnavailable(error)) {
    return authErrorToConnectError(
      new AuthError("UNAVAILABLE", "the service is unavailable; retry later", { cause: error }),
    );
  }
  // The client went away or its deadline passed while the call waited: nobody reads the answer.
  if (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError")) {
    return new ConnectError("the call was cancelled", Code.Canceled, undefined, undefined, error);
  }
  if (
    error instanceof ConnectError &&
    error.code !== Code.Internal &&
    error.code !== Code.Unknown
  ) {
    return error;
  }
  onInternal(error);
  return new ConnectError("internal error", Code.Internal, undefined, undefined, error);
}

/** The google.rpc.Status that gRPC carries in the "grpc-status-details-bin" trailer. */
export function grpcStatusDetails(error: ConnectError): Uint8Array {
  const status = create(StatusSchema, {
    code: error.code,
    message: error.rawMessage,
    details: error.details.map((entry) =>
      "desc" in entry
        ? anyPack(entry.desc, create(entry.desc, entry.value))
        : { typeUrl: `type.googleapis.com/${entry.type}`, value: entry.value },
    ),
  });
  return toBinary(StatusSchema, status);
}

/** The reasons of DESIGN.md §2: the contract clients switch on. */
export type AuthErrorReason =
  | "INVALID_ARGUMENT"
  | "USER_ALREADY_EXISTS"
  | "INVALID_CREDENTIALS"
  | "RATE_LIMITED"
  | "REFRESH_TOKEN_INVALID"
  | "REFRESH_TOKEN_EXPIRED"
  | "REFRESH_TOKEN_REUSED"
  | "TOKEN_INVALID"
  | "TOKEN_EXPIRED"
  | "SESSION_REVOKED"
  | "UNAVAILABLE";

/** One bad request field; `field` is the proto field name in snake_case. */
export interface FieldViolation {
  field: string;
  description: string;
}

export interface AuthErrorOptions {
  fieldViolations?: FieldViolation[];
  metadata?: Record<string, string>;
  /** For RATE_LIMITED: how long the client should wait (google.rpc.RetryInfo). */
  retryDelayMs?: number;
  cause?: unknown;
}

/**
 * The one error the domain throws. Its message is safe to show a user; anything
 * sensitive stays in `cause`, which is logged and never sent.
 */
export class AuthError extends Error {
  override readonly name = "AuthError";
  readonly fieldViolations: FieldViolation[];
  readonly metadata: Record<string, string>;
  readonly retryDelayMs: number | undefined;

  constructor(
    readonly reason: AuthErrorReason,
    message: string,
    options: AuthErrorOptions = {},
  ) {
    super(message, { cause: options.cause });
    this.fieldViolations = options.fieldViolations ?? [];
    this.metadata = options.metadata ?? {};
    this.retryDelayMs = options.retryDelayMs;
  }
}

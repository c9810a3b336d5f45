import type { Logger } from "pino";
import { fixedFieldsLogger } from "./observability/logger.js";

/** The security events that leave an audit trail, one log line each. */
export type AuditEvent =
  | "sign_up"
  | "login_succeeded"
  | "login_failed"
  | "refresh"
  | "refresh_token_reused"
  | "logout"
  | "rate_limited";

/** Who made a call: what the domain needs to know about it besides its fields. */
export interface Caller {
  /** The client's IP address (the first x-forwarded-for hop behind a trusted proxy). */
  clientAddress: string;
  /** Aborted when the client cancels or its deadline passes. */
  signal: AbortSignal;
}

export interface AuditRecord {
  event: AuditEvent;
  caller: Caller;
  userId?: string;
  sessionId?: string;
  /** Why, in a word: `wrong_password`, `login_identifier`, `all_sessions`, … */
  reason?: string;
}

/**
 * Writes one audit event. Records carry ids, the client address and a reason, never a
 * password, token or hash: only those fields are ever written.
 */
export type AuditLog = (record: AuditRecord) => void;

export function createAuditLog(logger: Logger): AuditLog {
  const audit = fixedFieldsLogger(logger, { audit: true });
  return ({ event, caller, userId, sessionId, reason }) =>
    audit.info(
      {
        event,
        user_id: userId,
        session_id: sessionId,
        client_address: caller.clientAddress,
        reason,
      },
      `audit: ${event}`,
    );
}

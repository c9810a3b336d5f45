import type { Generated, Insertable, Selectable } from "kysely";

export interface UserTable {
  id: string;
  username: string;
  email: string;
  phone_number: string | null;
  first_name: string;
  last_name: string;
  password_hash: string;
  create_time: Date;
  /** Set while the user is disabled (no login); null otherwise. */
  disable_time: Generated<Date | null>;
}

export interface SessionTable {
  id: string;
  user_id: string;
  create_time: Date;
  /** Absolute end of the session (SESSION_MAX_AGE after login), whatever the refreshes. */
  expire_time: Date;
  revoke_time: Date | null;
  revoke_reason: string | null;
}

export interface RefreshTokenTable {
  /** SHA-256 of the token; the token itself is never stored. */
  token_hash: Uint8Array;
  session_id: string;
  create_time: Date;
  expire_time: Date;
  /** Set when the token was rotated; presenting it again is reuse. */
  use_time: Date | null;
  /** The token whose rotation issued this one; null for a session's first token. */
  parent_hash: Uint8Array | null;
  /** How often this token was presented again within REFRESH_REUSE_GRACE. */
  reuse_count: Generated<number>;
}

export interface RateLimitTable {
  /** SHA-256 of the rule and its subject (identifier or client address). */
  key: Uint8Array;
  /** Attempts let through since `window_start`. */
  hits: number;
  window_start: Date;
  /** When the latest attempt was let through. */
  last_hit_time: Date;
  /** Whether the latest attempt was let through: what RETURNING tells the caller. */
  allowed: boolean;
}

export interface DatabaseSchema {
  users: UserTable;
  sessions: SessionTable;
  refresh_tokens: RefreshTokenTable;
  rate_limits: RateLimitTable;
}

export type UserRow = Selectable<UserTable>;
export type NewUserRow = Insertable<UserTable>;
export type SessionRow = Selectable<SessionTable>;

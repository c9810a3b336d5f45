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
}

export interface DatabaseSchema {
  users: UserTable;
  sessions: SessionTable;
  refresh_tokens: RefreshTokenTable;
}

export type UserRow = Selectable<UserTable>;
export type NewUserRow = Insertable<UserTable>;
export type SessionRow = Selectable<SessionTable>;

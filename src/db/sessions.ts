import { sql } from "kysely";
import type { User } from "../accounts/user.js";
import { compiledOnce, type Database } from "./database.js";
import { userColumns, userFromRow } from "./users.js";

export interface NewSession {
  id: string;
  userId: string;
  createTime: Date;
  expireTime: Date;
}

export interface NewRefreshToken {
  tokenHash: Uint8Array;
  /** The token whose rotation issued this one. */
  parentHash?: Uint8Array;
  sessionId: string;
  createTime: Date;
  expireTime: Date;
}

/** A refresh token with its session and user, locked for the rest of the transaction. */
export interface LockedRefreshToken {
  sessionId: string;
  tokenExpireTime: Date;
  tokenUseTime: Date | null;
  /** How often the token was presented again within the reuse grace. */
  tokenReuseCount: number;
  sessionExpireTime: Date;
  sessionRevokeTime: Date | null;
  user: User;
}

export type RevokeReason = "logout" | "refresh_token_reused" | "user_disabled" | "admin";

/**
 * Starts a session with its first refresh token, in one statement: no transaction round
 * trips on the Login path. The token's row is built from the session's RETURNING, so it is
 * written with (and only with) its session. False, and nothing written, when the user is
 * disabled by then: the row lock (FOR SHARE) makes a concurrent `users disable` either wait
 * for this session, and revoke it, or commit first, and be seen here.
 */
export async function insertSession(
  db: Database,
  session: NewSession,
  firstToken: Omit<NewRefreshToken, "sessionId" | "parentHash">,
): Promise<boolean> {
  const inserted = await db
    .with("session", (qb) =>
      qb
        .insertInto("sessions")
        .columns(["id", "user_id", "create_time", "expire_time"])
        .expression((eb) =>
          eb
            .selectFrom("users")
            .select((eb) => [
              eb.val(session.id).as("id"),
              "users.id",
              eb.val(session.createTime).as("create_time"),
              eb.val(session.expireTime).as("expire_time"),
            ])
            .where("users.id", "=", session.userId)
            .where("users.disable_time", "is", null)
            .forShare(),
        )
        .returning("id"),
    )
    .insertInto("refresh_tokens")
    .columns(["token_hash", "session_id", "create_time", "expire_time"])
    .expression((eb) =>
      eb
        .selectFrom("session")
        .select((eb) => [
          eb.val(firstToken.tokenHash).as("token_hash"),
          "session.id",
          eb.val(firstToken.createTime).as("create_time"),
          eb.val(firstToken.expireTime).as("expire_time"),
        ]),
    )
    .executeTakeFirst();
  return inserted.numInsertedOrUpdatedRows === 1n;
}

export async function insertRefreshToken(db: Database, token: NewRefreshToken): Promise<void> {
  await db
    .insertInto("refresh_tokens")
    .values({
      token_hash: token.tokenHash,
      parent_hash: token.parentHash ?? null,
      session_id: token.sessionId,
      create_time: token.createTime,
      expire_time: token.expireTime,
    })
    .execute();
}

/** The columns of a token's user (table alias `u`) that userFromRow reads. */
const tokenUserColumns = userColumns.map((column) => `u.${column}` as const);

/**
 * Finds a refresh token by hash and locks its row and its session's row
 * (SELECT … FOR UPDATE), so concurrent rotations of one token run one after another.
 * Call inside a transaction.
 */
export async function lockRefreshToken(
  trx: Database,
  tokenHash: Uint8Array,
): Promise<LockedRefreshToken | undefined> {
  const row = await trx
    .selectFrom("refresh_tokens as t")
    .innerJoin("sessions as s", "s.id", "t.session_id")
    .innerJoin("users as u", "u.id", "s.user_id")
    .select([
      "t.session_id",
      "t.expire_time as token_expire_time",
      "t.use_time as token_use_time",
      "t.reuse_count as token_reuse_count",
      "s.expire_time as session_expire_time",
      "s.revoke_time as session_revoke_time",
      ...tokenUserColumns,
    ])
    .where("t.token_hash", "=", tokenHash)
    .forUpdate(["t", "s"])
    .executeTakeFirst();
  if (row === undefined) {
    return undefined;
  }
  return {
    sessionId: row.session_id,
    tokenExpireTime: row.token_expire_time,
    tokenUseTime: row.token_use_time,
    tokenReuseCount: row.token_reuse_count,
    sessionExpireTime: row.session_expire_time,
    sessionRevokeTime: row.session_revoke_time,
    user: userFromRow(row),
  };
}

export interface Rotation {
  /** The presented token. */
  tokenHash: Uint8Array;
  /** The token that replaces it. */
  nextTokenHash: Uint8Array;
  now: Date;
  /** The next token's expire time, unless its session ends sooner. */
  nextExpireTime: Date;
}

/** A token rotated by rotateUsableRefreshToken: its session and user, and the next token's end. */
export interface RotatedRefreshToken {
  sessionId: string;
  user: User;
  nextExpireTime: Date;
}

/** The rotation statement, compiled once: it runs on every Refresh. */
const rotationPlaceholders: Rotation = {
  tokenHash: new Uint8Array(),
  nextTokenHash: new Uint8Array(),
  now: new Date(0),
  nextExpireTime: new Date(0),
};
const rotateUsable = compiledOnce(
  rotationPlaceholders,
  (db, { tokenHash, nextTokenHash, now, nextExpireTime }) =>
    db
      .with("used", (qb) =>
        qb
          .updateTable("refresh_tokens as t")
          .from(["sessions as s", "users as u"])
          .set({ use_time: now })
          .whereRef("s.id", "=", "t.session_id")
          .whereRef("u.id", "=", "s.user_id")
          .where("t.token_hash", "=", tokenHash)
          .where("t.use_time", "is", null)
          .where("t.expire_time", ">", now)
          .where("s.revoke_time", "is", null)
          .where("s.expire_time", ">", now)
          .returning(["t.session_id", "s.expire_time as session_expire_time", ...tokenUserColumns]),
      )
      .with("next", (qb) =>
        qb
          .insertInto("refresh_tokens")
          .columns(["token_hash", "parent_hash", "session_id", "create_time", "expire_time"])
          .expression((eb) =>
            eb
              .selectFrom("used")
              .select((eb) => [
                eb.val(nextTokenHash).as("token_hash"),
                eb.val(tokenHash).as("parent_hash"),
                "used.session_id",
                eb.val(now).as("create_time"),
                eb
                  .fn<Date>("least", [eb.val(nextExpireTime), "used.session_expire_time"])
                  .as("expire_time"),
              ]),
          )
          .returning("expire_time as next_expire_time"),
      )
      .selectFrom(["used", "next"])
      .selectAll(),
);

/**
 * Rotates a refresh token in one statement, outside any transaction: marks it used and inserts
 * the next one, provided the token is unused and unexpired and its session neither revoked nor
 * expired (what lockUsableToken requires; disabling a user revokes their sessions). Undefined
 * otherwise: the caller then takes the locking path, which tells why. Concurrent rotations of one
 * token queue on its row and the UPDATE re-checks `use_time` after the wait, so one wins.
 * The session row is not locked, so a revocation committing meanwhile can go unseen. That is as if
 * the rotation ran just before it: the new refresh token's session is revoked, and revocation
 * checks refuse the new access token by its session id, whenever it was issued.
 */
export async function rotateUsableRefreshToken(
  db: Database,
  rotation: Rotation,
): Promise<RotatedRefreshToken | undefined> {
  const [row] = (await rotateUsable(db, rotation)).rows;
  if (row === undefined) {
    return undefined;
  }
  return {
    sessionId: row.session_id,
    user: userFromRow(row),
    nextExpireTime: row.next_expire_time,
  };
}

/** Marks a refresh token as rotated; presenting it again is then reuse. */
export async function markRefreshTokenUsed(
  db: Database,
  tokenHash: Uint8Array,
  useTime: Date,
): Promise<void> {
  await db
    .updateTable("refresh_tokens")
    .set({ use_time: useTime })
    .where("token_hash", "=", tokenHash)
    .execute();
}

/**
 * The unused token that the rotation of `parentHash` issued, if any: a session has at most one
 * unused token, so this is the session's newest token exactly when `parentHash` is its parent.
 */
export async function findUnusedChildToken(
  db: Database,
  parentHash: Uint8Array,
): Promise<Uint8Array | undefined> {
  const row = await db
    .selectFrom("refresh_tokens")
    .select("token_hash")
    .where("parent_hash", "=", parentHash)
    .where("use_time", "is", null)
    .executeTakeFirst();
  return row?.token_hash;
}

/** Counts one more presentation of an already rotated token within the reuse grace. */
export async function countRefreshTokenReuse(db: Database, tokenHash: Uint8Array): Promise<void> {
  await db
    .updateTable("refresh_tokens")
    .set((eb) => ({ reuse_count: eb("reuse_count", "+", 1) }))
    .where("token_hash", "=", tokenHash)
    .execute();
}

/** The PostgreSQL NOTIFY channel on which every revocation is announced to every replica. */
export const REVOCATION_CHANNEL = "auth_session_revoked";
/** Ids per notification: a NOTIFY payload must stay under 8000 bytes. */
const IDS_PER_NOTIFICATION = 100;

/** Sessions revoked together, as a revocation notification carries them. */
export interface Revocation {
  sessionIds: string[];
  revokeTime: Date;
}

/** Parses a notification payload; undefined when it is not one of ours. */
export function parseRevocationPayload(payload: string): Revocation | undefined {
  try {
    const { ids, t } = JSON.parse(payload) as { ids?: unknown; t?: unknown };
    if (Array.isArray(ids) && ids.every((id) => typeof id === "string") && typeof t === "number") {
      return { sessionIds: ids, revokeTime: new Date(t) };
    }
  } catch {
    // Not ours: ignored below.
  }
  return undefined;
}

/**
 * Announces revoked sessions on REVOCATION_CHANNEL. Inside a transaction the notification
 * is delivered when (and only if) it commits.
 */
async function notifyRevoked(db: Database, sessionIds: string[], revokeTime: Date) {
  for (let start = 0; start < sessionIds.length; start += IDS_PER_NOTIFICATION) {
    const payload = JSON.stringify({
      ids: sessionIds.slice(start, start + IDS_PER_NOTIFICATION),
      t: revokeTime.getTime(),
    });
    await sql`select pg_notify(${REVOCATION_CHANNEL}, ${payload})`.execute(db);
  }
}

/** Revokes the live sessions whose `column` is `value`, announces them, returns their ids. */
async function revokeLiveSessions(
  db: Database,
  column: "id" | "user_id",
  value: string,
  revokeTime: Date,
  reason: RevokeReason,
): Promise<string[]> {
  const rows = await db
    .updateTable("sessions")
    .set({ revoke_time: revokeTime, revoke_reason: reason })
    .where(column, "=", value)
    .where("revoke_time", "is", null)
    .returning("id")
    .execute();
  const ids = rows.map((row) => row.id);
  await notifyRevoked(db, ids, revokeTime);
  return ids;
}

/**
 * Revokes one session and announces it; a session already revoked keeps its first
 * revocation. Returns the ids revoked now (empty when it already was).
 */
export function revokeSession(
  db: Database,
  sessionId: string,
  revokeTime: Date,
  reason: RevokeReason,
): Promise<string[]> {
  return revokeLiveSessions(db, "id", sessionId, revokeTime, reason);
}

/** Revokes every live session of a user and announces them; returns their ids. */
export function revokeUserSessions(
  db: Database,
  userId: string,
  revokeTime: Date,
  reason: RevokeReason,
): Promise<string[]> {
  return revokeLiveSessions(db, "user_id", userId, revokeTime, reason);
}

/** Sessions revoked at or after `since`, oldest first. */
export async function listRevokedSessions(db: Database, since: Date): Promise<Revocation[]> {
  const rows = await db
    .selectFrom("sessions")
    .select(["id", "revoke_time"])
    .where("revoke_time", ">=", since)
    .orderBy("revoke_time")
    .execute();
  return rows.flatMap((row) =>
    row.revoke_time === null ? [] : [{ sessionIds: [row.id], revokeTime: row.revoke_time }],
  );
}

/** Sessions neither revoked nor past their absolute lifetime (for the active-sessions gauge). */
export async function countActiveSessions(db: Database, now: Date): Promise<number> {
  const row = await db
    .selectFrom("sessions")
    .select((eb) => eb.fn.countAll<string>().as("count"))
    .where("revoke_time", "is", null)
    .where("expire_time", ">", now)
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

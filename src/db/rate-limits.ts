import { type RawBuilder, sql } from "kysely";
import type { Database } from "./database.js";

export interface RateLimitHit {
  key: Uint8Array;
  now: Date;
  /** Attempts let through freely per window. */
  limit: number;
  windowMs: number;
  /** Wait before the first attempt beyond the limit; it doubles with each one after. */
  backoffBaseMs: number;
  /** The longest wait. */
  backoffMaxMs: number;
}

export type RateLimitDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * Counts one attempt and decides it in one statement (INSERT … ON CONFLICT DO UPDATE …
 * RETURNING), so concurrent attempts on any replica take turns on the row and none is lost.
 *
 * The first `limit` attempts of a window pass. Beyond it, attempt n + 1 passes only
 * `backoffBaseMs · 2^(n − limit)` (at most `backoffMaxMs`) after attempt n; refused attempts
 * change nothing. A counter starts over once its window has passed and, after a backoff,
 * once a whole window has passed since the backoff ended.
 */
export async function hitRateLimit(db: Database, hit: RateLimitHit): Promise<RateLimitDecision> {
  const { key, now, limit, windowMs, backoffBaseMs, backoffMaxMs } = hit;
  const at = sql`cast(${now.toISOString()} as timestamptz)`;
  const millis = (value: number | RawBuilder<unknown>) =>
    sql`(cast(${value} as double precision) * interval '1 millisecond')`;
  const backoff = (hits: RawBuilder<unknown>) =>
    millis(
      sql`least(cast(${backoffBaseMs} as double precision) * power(2, greatest(0, least(${hits} - ${limit}, 40))), ${backoffMaxMs})`,
    );
  const hits = sql.ref("r.hits");
  const passes = sql`(${hits} < ${limit} or ${at} >= r.last_hit_time + ${backoff(hits)})`;
  const stale = sql`(${at} >= r.window_start + ${millis(windowMs)} and (${hits} < ${limit} or ${at} >= r.last_hit_time + ${backoff(hits)} + ${millis(windowMs)}))`;
  const result = await sql<{ allowed: boolean; retry_time: Date }>`
    insert into rate_limits as r (key, hits, window_start, last_hit_time, allowed)
    values (${key}, 1, ${at}, ${at}, true)
    on conflict (key) do update set
      hits = case when ${stale} then 1 when ${passes} then r.hits + 1 else r.hits end,
      window_start = case when ${stale} then ${at} else r.window_start end,
      last_hit_time = case when ${stale} or ${passes} then ${at} else r.last_hit_time end,
      allowed = ${stale} or ${passes}
    returning r.allowed, r.last_hit_time + ${backoff(hits)} as retry_time`.execute(db);
  const row = result.rows[0];
  if (row === undefined || row.allowed) {
    return { allowed: true };
  }
  return {
    allowed: false,
    retryAfterMs: Math.max(0, new Date(row.retry_time).getTime() - now.getTime()),
  };
}

/**
 * After a success, in one statement: forgets every attempt of one key (a login resets its
 * identifier) and takes one attempt back from another (a login does not count against its
 * address).
 */
export async function resetAndRefundRateLimits(
  db: Database,
  resetKey: Uint8Array,
  refundKey: Uint8Array,
): Promise<void> {
  await db
    .with("reset", (qb) => qb.deleteFrom("rate_limits").where("key", "=", resetKey))
    .updateTable("rate_limits")
    .set((eb) => ({ hits: sql<number>`greatest(${eb.ref("hits")} - 1, 0)` }))
    .where("key", "=", refundKey)
    .execute();
}

/** Deletes counters whose last attempt is older than `before`: they would start over anyway. */
export async function pruneRateLimits(db: Database, before: Date): Promise<void> {
  await db.deleteFrom("rate_limits").where("last_hit_time", "<", before).execute();
}

import type { Kysely } from "kysely";

// Frozen: a later change to the schema is a new migration, never an edit here.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  // One row per limited subject (a hashed identifier or client address), shared by all replicas.
  await db.schema
    .createTable("rate_limits")
    .addColumn("key", "bytea", (c) => c.primaryKey())
    .addColumn("hits", "integer", (c) => c.notNull())
    .addColumn("window_start", "timestamptz", (c) => c.notNull())
    .addColumn("last_hit_time", "timestamptz", (c) => c.notNull())
    .addColumn("allowed", "boolean", (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex("rate_limits_last_hit_time_idx")
    .on("rate_limits")
    .column("last_hit_time")
    .execute();

  // REFRESH_REUSE_GRACE: which token a rotation replaced, and how often it was presented again.
  await db.schema
    .alterTable("refresh_tokens")
    .addColumn("parent_hash", "bytea")
    .addColumn("reuse_count", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema
    .createIndex("refresh_tokens_parent_hash_idx")
    .on("refresh_tokens")
    .column("parent_hash")
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("refresh_tokens_parent_hash_idx").execute();
  await db.schema
    .alterTable("refresh_tokens")
    .dropColumn("parent_hash")
    .dropColumn("reuse_count")
    .execute();
  await db.schema.dropTable("rate_limits").execute();
}

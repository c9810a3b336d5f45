import type { Kysely } from "kysely";

// Frozen: a later change to the schema is a new migration, never an edit here.

/** A disabled user (CLI `users disable`) cannot log in; null means enabled. */
// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("users").addColumn("disable_time", "timestamptz").execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("users").dropColumn("disable_time").execute();
}

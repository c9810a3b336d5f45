import type { Kysely } from "kysely";

/** Revoked sessions are read by revoke time at start and on every catch-up. */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen in time, not typed by today's schema
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createIndex("sessions_revoke_time_idx")
    .on("sessions")
    .column("revoke_time")
    .where("revoke_time", "is not", null)
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("sessions_revoke_time_idx").execute();
}

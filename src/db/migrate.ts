import { type Kysely, type Migration, type MigrationProvider, Migrator } from "kysely";
import * as initial from "./migrations/2026-11-23T00-00-initial.js";
import * as rateLimitsAndRefreshGrace from "./migrations/2026-11-23T01-00-rate-limits-and-refresh-grace.js";
import * as sessionsRevokeTime from "./migrations/2026-11-23T12-00-sessions-revoke-time.js";
import * as userDisableTime from "./migrations/2026-11-23T18-45-user-disable-time.js";
import type { DatabaseSchema } from "./schema.js";

/** Migrations are imported, not read from disk, so the build needs no file-system lookups. */
const migrations: MigrationProvider = {
  async getMigrations(): Promise<Record<string, Migration>> {
    return {
      "2026-11-23T00-00-initial": initial,
      "2026-11-23T01-00-rate-limits-and-refresh-grace": rateLimitsAndRefreshGrace,
      "2026-11-23T12-00-sessions-revoke-time": sessionsRevokeTime,
      "2026-11-23T18-45-user-disable-time": userDisableTime,
    };
  },
};

/** Applies every pending migration; throws when one fails. Returns the names applied. */
export async function migrateToLatest(db: Kysely<DatabaseSchema>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrations });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    throw new Error("database migration failed", { cause: error });
  }
  return (results ?? [])
    .filter((result) => result.status === "Success")
    .map((result) => result.migrationName);
}

import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import { Kysely, type LogEvent, PostgresDialect } from "kysely";
import pg from "pg";
import type { PoolUsage } from "../observability/metrics.js";
import type { DatabaseSchema } from "./schema.js";

export type Database = Kysely<DatabaseSchema>;

export interface DatabaseOptions {
  /** PostgreSQL URL; undefined selects the embedded PGlite. */
  url: string | undefined;
  /** Where PGlite keeps its files; undefined keeps them in memory (tests). */
  dataDir: string | undefined;
  /** Connections per replica (PostgreSQL only). */
  poolSize?: number;
  /** Told of every query after it ran (for trace spans); unset costs nothing per query. */
  onQuery?: (query: ExecutedQuery) => void;
}

export interface ExecutedQuery {
  /** The SQL text with placeholders: parameter values are never included. */
  sql: string;
  durationMs: number;
  failed: boolean;
}

/** The pg pool behind each database opened on PostgreSQL, for its usage metrics. */
const pgPools = new WeakMap<Database, pg.Pool>();

/** Connections of the database's pool; PGlite is one in-process connection. */
export function poolUsage(db: Database): PoolUsage {
  const pool = pgPools.get(db);
  return pool
    ? { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }
    : { total: 1, idle: 0, waiting: 0 };
}

function queryLogger(onQuery: DatabaseOptions["onQuery"]) {
  return (
    onQuery &&
    ((event: LogEvent) =>
      onQuery({
        sql: event.query.sql,
        durationMs: event.queryDurationMillis,
        failed: event.level === "error",
      }))
  );
}

/**
 * The PGlite instance behind an embedded database, for its in-process LISTEN. An
 * association, not shared state: each openDatabase call adds its own entry.
 */
const embeddedInstances = new WeakMap<Database, PGlite>();

/** The PGlite instance of a database opened without a URL; undefined on PostgreSQL. */
export function embeddedInstance(db: Database): PGlite | undefined {
  return embeddedInstances.get(db);
}

/** Opens the database: a `pg` pool when a URL is given, else PGlite. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url !== undefined) {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      // Fail fast when PostgreSQL is away, so calls answer UNAVAILABLE within their deadline.
      connectionTimeoutMillis: 5_000,
    });
    // A client losing its connection emits "error"; unheard, that would crash the process.
    // Idle clients report to the pool, checked-out ones (mid-transaction) to their own
    // listener; either way the next query on that client fails and reports it.
    pool.on("error", () => {});
    pool.on("connect", (client) => client.on("error", () => {}));
    const db = new Kysely<DatabaseSchema>({
      dialect: new PostgresDialect({ pool }),
      log: queryLogger(options.onQuery),
    });
    pgPools.set(db, pool);
    return db;
  }
  // Loaded only for the embedded database: a service on PostgreSQL does not carry it.
  const [{ PGlite }, { PGliteDialect }] = await Promise.all([
    import("@electric-sql/pglite"),
    import("kysely-pglite-dialect"),
  ]);
  let pglite: PGlite;
  if (options.dataDir !== undefined) {
    const directory = path.resolve(options.dataDir, "pglite");
    await mkdir(directory, { recursive: true });
    pglite = await PGlite.create(directory);
  } else {
    pglite = await PGlite.create();
  }
  const db = new Kysely<DatabaseSchema>({
    dialect: new PGliteDialect(pglite),
    log: queryLogger(options.onQuery),
  });
  embeddedInstances.set(db, pglite);
  return db;
}

/** True while the database answers a trivial query. */
export async function pingDatabase(db: Database): Promise<boolean> {
  try {
    await db.selectNoFrom((eb) => eb.lit(1).as("one")).execute();
    return true;
  } catch {
    return false;
  }
}

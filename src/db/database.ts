import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { PGlite } from "@electric-sql/pglite";
import {
  type Compilable,
  type CompiledQuery,
  Kysely,
  type LogEvent,
  PostgresDialect,
  type PostgresPool,
  type PostgresPoolClient,
  type QueryResult,
} from "kysely";
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
  /** Named server-side prepared statements (PostgreSQL only; default true). */
  preparedStatements?: boolean;
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

/** Distinct statements prepared per pool; beyond it, statements are sent unnamed. */
const MAX_PREPARED_STATEMENTS = 1_000;

/**
 * The pool, with every query sent as a named prepared statement: PostgreSQL parses and
 * plans each distinct SQL text once per connection instead of on every call, which is
 * about half of its time for our short statements. Kysely's SQL text is stable for a
 * query's shape (values are always parameters), so the names stay few.
 */
function preparingPool(pool: pg.Pool): PostgresPool {
  const names = new Map<string, string>();
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (name === undefined && names.size < MAX_PREPARED_STATEMENTS) {
      name = `auth_service_${names.size}`;
      names.set(text, name);
    }
    return name;
  };
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      return {
        // Kysely passes a cursor only when the dialect is given one, which ours is not.
        // Statements without parameters (migrations' DDL, which may hold several commands
        // that a prepared statement cannot) go unnamed, by the simple query protocol.
        query: ((sql: string, parameters: readonly unknown[]) =>
          client.query({
            name: parameters.length > 0 ? nameOf(sql) : undefined,
            text: sql,
            values: [...parameters],
          })) as unknown as PostgresPoolClient["query"],
        release: () => client.release(),
      };
    },
    end: () => pool.end(),
  };
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
      dialect: new PostgresDialect({
        pool: options.preparedStatements === false ? pool : preparingPool(pool),
      }),
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

/**
 * A statement built and compiled once per database, then run with each call's values: for
 * hot paths, where Kysely's building and compiling on every call is a measurable share of
 * the CPU (~15 % of a Refresh). `build` runs once, with `placeholders` for values: distinct
 * objects (a Date, a Uint8Array) that each call's values replace wherever they appear.
 */
export function compiledOnce<Values extends object, Row>(
  placeholders: Values,
  build: (db: Database, values: Values) => Compilable<Row>,
): (db: Database, values: Values) => Promise<QueryResult<Row>> {
  const slotOf = new Map<unknown, keyof Values>(
    Object.entries(placeholders).map(([name, placeholder]) => [placeholder, name as keyof Values]),
  );
  const compiledFor = new WeakMap<
    Database,
    { query: CompiledQuery<Row>; slots: (keyof Values | undefined)[] }
  >();
  return (db, values) => {
    let compiled = compiledFor.get(db);
    if (compiled === undefined) {
      const query = build(db, placeholders).compile();
      compiled = { query, slots: query.parameters.map((parameter) => slotOf.get(parameter)) };
      compiledFor.set(db, compiled);
    }
    const { query, slots } = compiled;
    return db.executeQuery({
      ...query,
      parameters: slots.map((slot, index) =>
        slot === undefined ? query.parameters[index] : values[slot],
      ),
    });
  };
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

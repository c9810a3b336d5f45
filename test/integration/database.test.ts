import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compiledOnce, type Database, openDatabase } from "../../src/db/database.js";
import { migrateToLatest } from "../../src/db/migrate.js";
import { findUserById, insertUser } from "../../src/db/users.js";

const databaseUrl = process.env.TEST_DATABASE_URL || undefined;

/** A create-time window, [from, to). */
interface Window {
  from: Date;
  to: Date;
}

describe("compiledOnce", () => {
  let db: Database;
  const statements: string[] = [];
  let builds = 0;
  const placeholders: Window = { from: new Date(0), to: new Date(0) };
  const usersCreatedIn = compiledOnce(placeholders, (db, { from, to }) => {
    builds += 1;
    return db
      .selectFrom("users")
      .select("username")
      .where("create_time", ">=", from)
      .where("create_time", "<", to)
      .where("username", "like", "compiled-%")
      .where((eb) => eb.or([eb("create_time", "=", from), eb("create_time", ">", from)]))
      .orderBy("create_time");
  });

  // Each run's users in a day range of their own: a PostgreSQL test database keeps earlier runs'.
  const firstDay = Date.UTC(1000 + Math.floor(Math.random() * 900), 0, 1);
  const day = (n: number) => new Date(firstDay + n * 24 * 60 * 60 * 1000);

  beforeAll(async () => {
    db = await openDatabase({
      url: databaseUrl,
      dataDir: undefined,
      onQuery: (query) => statements.push(query.sql),
    });
    await migrateToLatest(db);
    for (const index of [0, 1, 2]) {
      await insertUser(
        db,
        {
          id: randomUUID(),
          username: `compiled-${index}-${randomUUID().slice(0, 8)}`,
          email: `compiled-${randomUUID()}@example.com`,
          phoneNumber: undefined,
          firstName: "Compiled",
          lastName: "Once",
          createTime: day(index),
        },
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
      );
    }
  });

  afterAll(() => db.destroy());

  it("builds once and runs each call with its own values, every use of a value replaced", async () => {
    statements.length = 0;
    const firstTwo = await usersCreatedIn(db, { from: day(0), to: day(2) });
    const lastOne = await usersCreatedIn(db, { from: day(2), to: day(3) });
    expect(firstTwo.rows.map((row) => row.username.slice(0, 10))).toEqual([
      "compiled-0",
      "compiled-1",
    ]);
    expect(lastOne.rows.map((row) => row.username.slice(0, 10))).toEqual(["compiled-2"]);
    expect(builds).toBe(1);
    // The query still goes through Kysely's executor, so tracing sees it.
    expect(statements).toHaveLength(2);
    expect(statements[0]).toBe(statements[1]);
  });

  it("leaves the placeholders' values out of every call", async () => {
    const none = await usersCreatedIn(db, placeholders);
    expect(none.rows).toEqual([]);
  });
});

describe.runIf(databaseUrl)("prepared statements on PostgreSQL", () => {
  /** Names of the statements prepared on the pool's one connection. */
  async function preparedStatements(db: Database): Promise<string[]> {
    const result = await sql<{
      statement: string;
    }>`select statement from pg_prepared_statements where name like 'auth_service_%' and ${1} = 1`.execute(
      db,
    );
    return result.rows.map((row) => row.statement);
  }

  it("prepares each parameterized statement once per connection, and runs it again by name", async () => {
    const db = await openDatabase({ url: databaseUrl, dataDir: undefined, poolSize: 1 });
    try {
      await migrateToLatest(db);
      const missing = randomUUID();
      await findUserById(db, missing);
      await findUserById(db, randomUUID());
      const prepared = await preparedStatements(db);
      const lookups = prepared.filter((text) => text.includes('from "users" where "id" = $1'));
      expect(lookups).toHaveLength(1);
      // Statements without parameters go unprepared: DDL may hold several commands.
      await sql`create temporary table if not exists scratch (id int); drop table scratch`.execute(
        db,
      );
      expect(await preparedStatements(db)).toEqual(prepared);
    } finally {
      await db.destroy();
    }
  });

  it("prepares nothing when DATABASE_PREPARED_STATEMENTS is false", async () => {
    const db = await openDatabase({
      url: databaseUrl,
      dataDir: undefined,
      poolSize: 1,
      preparedStatements: false,
    });
    try {
      await migrateToLatest(db);
      await findUserById(db, randomUUID());
      expect(await preparedStatements(db)).toEqual([]);
    } finally {
      await db.destroy();
    }
  });
});

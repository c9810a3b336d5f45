import { type Kysely, sql } from "kysely";

// Frozen: a later change to the schema is a new migration, never an edit here.

// biome-ignore lint/suspicious/noExplicitAny: migrations must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("users")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("username", "text", (c) => c.notNull())
    .addColumn("email", "text", (c) => c.notNull())
    .addColumn("phone_number", "text")
    .addColumn("first_name", "text", (c) => c.notNull())
    .addColumn("last_name", "text", (c) => c.notNull())
    .addColumn("password_hash", "text", (c) => c.notNull())
    .addColumn("create_time", "timestamptz", (c) => c.notNull())
    .execute();
  // Uniqueness ignores case: decided by these indexes, so concurrent sign-ups cannot both win.
  await sql`CREATE UNIQUE INDEX users_username_key ON users (lower(username))`.execute(db);
  await sql`CREATE UNIQUE INDEX users_email_key ON users (lower(email))`.execute(db);
  await sql`CREATE UNIQUE INDEX users_phone_number_key ON users (phone_number)`.execute(db);

  await db.schema
    .createTable("sessions")
    .addColumn("id", "uuid", (c) => c.primaryKey())
    .addColumn("user_id", "uuid", (c) => c.notNull().references("users.id").onDelete("cascade"))
    .addColumn("create_time", "timestamptz", (c) => c.notNull())
    .addColumn("expire_time", "timestamptz", (c) => c.notNull())
    .addColumn("revoke_time", "timestamptz")
    .addColumn("revoke_reason", "text")
    .execute();
  await db.schema.createIndex("sessions_user_id_idx").on("sessions").column("user_id").execute();

  await db.schema
    .createTable("refresh_tokens")
    .addColumn("token_hash", "bytea", (c) => c.primaryKey())
    .addColumn("session_id", "uuid", (c) =>
      c.notNull().references("sessions.id").onDelete("cascade"),
    )
    .addColumn("create_time", "timestamptz", (c) => c.notNull())
    .addColumn("expire_time", "timestamptz", (c) => c.notNull())
    .addColumn("use_time", "timestamptz")
    .execute();
  await db.schema
    .createIndex("refresh_tokens_session_id_idx")
    .on("refresh_tokens")
    .column("session_id")
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("refresh_tokens").execute();
  await db.schema.dropTable("sessions").execute();
  await db.schema.dropTable("users").execute();
}

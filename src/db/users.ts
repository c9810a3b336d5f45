import type { Identifier, IdentifierKind, User } from "../accounts/user.js";
import { AuthError } from "../auth-error.js";
import type { Database } from "./database.js";
import { violatedUniqueConstraint } from "./errors.js";
import type { UserRow } from "./schema.js";

export interface StoredUser {
  user: User;
  passwordHash: string;
  /** A disabled user cannot log in. */
  disabled: boolean;
}

/** The unique index behind each field that must be unique. */
const UNIQUE_INDEX_FIELDS: Record<string, IdentifierKind> = {
  users_username_key: "username",
  users_email_key: "email",
  users_phone_number_key: "phone_number",
};

/**
 * The columns a domain user is made of. Listed, never `*`: a statement prepared on a live
 * connection must keep its result columns when a later migration adds one.
 */
export const userColumns = [
  "id",
  "username",
  "email",
  "phone_number",
  "first_name",
  "last_name",
  "create_time",
] as const;

/** Rows stay in storage: this is the one place a user row becomes a domain user. */
export function userFromRow(row: Omit<UserRow, "disable_time" | "password_hash">): User {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    phoneNumber: row.phone_number ?? undefined,
    firstName: row.first_name,
    lastName: row.last_name,
    createTime: row.create_time,
  };
}

/**
 * Inserts a user. A taken username, email or phone number is found by the unique
 * indexes, so two concurrent sign-ups for one name cannot both succeed.
 */
export async function insertUser(db: Database, user: User, passwordHash: string): Promise<void> {
  try {
    await db
      .insertInto("users")
      .values({
        id: user.id,
        username: user.username,
        email: user.email,
        phone_number: user.phoneNumber ?? null,
        first_name: user.firstName,
        last_name: user.lastName,
        password_hash: passwordHash,
        create_time: user.createTime,
      })
      .execute();
  } catch (error) {
    const constraint = violatedUniqueConstraint(error);
    if (constraint === undefined) {
      throw error;
    }
    const field = UNIQUE_INDEX_FIELDS[constraint] ?? "username";
    throw new AuthError("USER_ALREADY_EXISTS", `${field} is already taken`, {
      metadata: { field },
      cause: error,
    });
  }
}

/** Finds a user by username or email (ignoring case) or by normalized phone number. */
export async function findUserByIdentifier(
  db: Database,
  identifier: Identifier,
): Promise<StoredUser | undefined> {
  let query = db.selectFrom("users").select([...userColumns, "password_hash", "disable_time"]);
  switch (identifier.kind) {
    // lower() on both sides, as in the unique indexes, so lookups and uniqueness agree.
    case "username":
    case "email": {
      const column = identifier.kind;
      query = query.where((eb) =>
        eb(eb.fn("lower", [column]), "=", eb.fn("lower", [eb.val(identifier.value)])),
      );
      break;
    }
    case "phone_number":
      query = query.where("phone_number", "=", identifier.value);
      break;
  }
  const row = await query.executeTakeFirst();
  return (
    row && {
      user: userFromRow(row),
      passwordHash: row.password_hash,
      disabled: row.disable_time !== null,
    }
  );
}

export async function updatePasswordHash(
  db: Database,
  userId: string,
  passwordHash: string,
): Promise<void> {
  await db
    .updateTable("users")
    .set({ password_hash: passwordHash })
    .where("id", "=", userId)
    .execute();
}

/** Disables (with a time) or enables (null) a user. */
export async function setUserDisableTime(
  db: Database,
  userId: string,
  disableTime: Date | null,
): Promise<void> {
  await db
    .updateTable("users")
    .set({ disable_time: disableTime })
    .where("id", "=", userId)
    .execute();
}

export async function findUserById(db: Database, userId: string): Promise<User | undefined> {
  const row = await db
    .selectFrom("users")
    .select(userColumns)
    .where("id", "=", userId)
    .executeTakeFirst();
  return row && userFromRow(row);
}

import type { Clock } from "../clock.js";
import type { Database } from "../db/database.js";
import { revokeUserSessions } from "../db/sessions.js";
import { findUserById, findUserByIdentifier, setUserDisableTime } from "../db/users.js";
import type { User } from "./user.js";
import { classifyIdentifier, normalizeText } from "./validation.js";

export interface UserAdminOptions {
  db: Database;
  clock: Clock;
}

/** What an operator did to a user; undefined from a command means no user matched. */
export interface UserAdminResult {
  user: User;
  /** Sessions that were live and are now revoked. */
  revokedSessions: number;
}

/** Operator commands on users (the CLI's `users` and `sessions`), not exposed over RPC. */
export interface UserAdmin {
  /** Blocks login and revokes every session, in one transaction. */
  disable(user: string): Promise<UserAdminResult | undefined>;
  /** Allows login again; sessions revoked at disable stay revoked. */
  enable(user: string): Promise<UserAdminResult | undefined>;
  /** Revokes every session of the user: each refresh token and access token stops working. */
  revokeSessions(user: string): Promise<UserAdminResult | undefined>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A user by id, or by a login identifier (username, email or phone number). */
async function findUser(db: Database, text: string): Promise<User | undefined> {
  const value = normalizeText(text);
  if (UUID.test(value)) {
    return findUserById(db, value);
  }
  const identifier = classifyIdentifier(value);
  return identifier && (await findUserByIdentifier(db, identifier))?.user;
}

export function createUserAdmin({ db, clock }: UserAdminOptions): UserAdmin {
  async function revokeAll(userText: string, disable: boolean) {
    return db.transaction().execute(async (trx) => {
      const user = await findUser(trx, userText);
      if (user === undefined) {
        return undefined;
      }
      const now = new Date(clock());
      if (disable) {
        await setUserDisableTime(trx, user.id, now);
      }
      const revoked = await revokeUserSessions(
        trx,
        user.id,
        now,
        disable ? "user_disabled" : "admin",
      );
      return { user, revokedSessions: revoked.length };
    });
  }

  return {
    disable: (user) => revokeAll(user, true),
    revokeSessions: (user) => revokeAll(user, false),
    async enable(userText) {
      const user = await findUser(db, userText);
      if (user === undefined) {
        return undefined;
      }
      await setUserDisableTime(db, user.id, null);
      return { user, revokedSessions: 0 };
    },
  };
}

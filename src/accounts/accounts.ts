import { randomUUID } from "node:crypto";
import { AuthError } from "../auth-error.js";
import type { Clock } from "../clock.js";
import type { Database } from "../db/database.js";
import { findUserByIdentifier, insertUser, updatePasswordHash } from "../db/users.js";
import { createCommonPasswordCheck } from "./common-passwords.js";
import type { PasswordHasher } from "./password-hasher.js";
import type { User } from "./user.js";
import { type SignUpInput, validateLogin, validateSignUp } from "./validation.js";

export interface AccountsOptions {
  db: Database;
  hasher: PasswordHasher;
  clock: Clock;
}

export interface Accounts {
  /** Creates a user; INVALID_ARGUMENT or USER_ALREADY_EXISTS. */
  signUp(input: SignUpInput): Promise<User>;
  /** The user behind an identifier and password; INVALID_ARGUMENT or INVALID_CREDENTIALS. */
  authenticate(identifier: string, password: string): Promise<User>;
}

const invalidCredentials = () =>
  new AuthError("INVALID_CREDENTIALS", "the identifier or the password is wrong");

export function createAccounts({ db, hasher, clock }: AccountsOptions): Accounts {
  const isCommonPassword = createCommonPasswordCheck();

  return {
    async signUp(input) {
      const validation = validateSignUp(input, isCommonPassword);
      if (!validation.ok) {
        throw new AuthError("INVALID_ARGUMENT", "the request has invalid fields", {
          fieldViolations: validation.violations,
        });
      }
      const { password, ...fields } = validation.value;
      const user: User = { id: randomUUID(), ...fields, createTime: new Date(clock()) };
      await insertUser(db, user, await hasher.hash(password));
      return user;
    },

    async authenticate(identifierText, password) {
      const validation = validateLogin(identifierText, password);
      if (!validation.ok) {
        throw new AuthError("INVALID_ARGUMENT", "the request has invalid fields", {
          fieldViolations: validation.violations,
        });
      }
      const stored =
        validation.identifier && (await findUserByIdentifier(db, validation.identifier));
      if (!stored) {
        await hasher.verifyDummy(password);
        throw invalidCredentials();
      }
      // A disabled user pays the full verify too: same answer, same time.
      if (!(await hasher.verify(stored.passwordHash, password)) || stored.disabled) {
        throw invalidCredentials();
      }
      if (hasher.needsRehash(stored.passwordHash)) {
        await updatePasswordHash(db, stored.user.id, await hasher.hash(password));
      }
      return stored.user;
    },
  };
}

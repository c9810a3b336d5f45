import { randomUUID } from "node:crypto";
import type { AuditLog, Caller } from "../audit-log.js";
import { AuthError } from "../auth-error.js";
import type { Clock } from "../clock.js";
import type { Database } from "../db/database.js";
import { findUserByIdentifier, insertUser, updatePasswordHash } from "../db/users.js";
import { createCommonPasswordCheck } from "./common-passwords.js";
import type { PasswordHasher } from "./password-hasher.js";
import type { RateLimiter, RateLimitRule } from "./rate-limiter.js";
import type { User } from "./user.js";
import { type SignUpInput, validateLogin, validateSignUp } from "./validation.js";

export interface AccountsOptions {
  db: Database;
  hasher: PasswordHasher;
  clock: Clock;
  rateLimiter: RateLimiter;
  audit: AuditLog;
}

export interface Accounts {
  /** Creates a user; INVALID_ARGUMENT, RATE_LIMITED or USER_ALREADY_EXISTS. */
  signUp(input: SignUpInput, caller: Caller): Promise<User>;
  /** The user behind an identifier and password; INVALID_ARGUMENT, RATE_LIMITED or INVALID_CREDENTIALS. */
  authenticate(identifier: string, password: string, caller: Caller): Promise<User>;
}

/** The one answer to a wrong identifier, a wrong password and a disabled user alike. */
export const invalidCredentials = () =>
  new AuthError("INVALID_CREDENTIALS", "the identifier or the password is wrong");

export function createAccounts({
  db,
  hasher,
  clock,
  rateLimiter,
  audit,
}: AccountsOptions): Accounts {
  const isCommonPassword = createCommonPasswordCheck();

  /** Counts an attempt before any costly work, and leaves an audit line when it is refused. */
  async function consume(rule: RateLimitRule, subject: string, caller: Caller): Promise<void> {
    try {
      await rateLimiter.consume(rule, subject);
    } catch (error) {
      if (error instanceof AuthError && error.reason === "RATE_LIMITED") {
        audit({ event: "rate_limited", caller, reason: rule });
      }
      throw error;
    }
  }

  return {
    async signUp(input, caller) {
      const validation = validateSignUp(input, isCommonPassword);
      if (!validation.ok) {
        throw new AuthError("INVALID_ARGUMENT", "the request has invalid fields", {
          fieldViolations: validation.violations,
        });
      }
      await consume("signup_address", caller.clientAddress, caller);
      const { password, ...fields } = validation.value;
      const user: User = { id: randomUUID(), ...fields, createTime: new Date(clock()) };
      await insertUser(db, user, await hasher.hash(password, caller.signal));
      audit({ event: "sign_up", caller, userId: user.id });
      return user;
    },

    async authenticate(identifierText, password, caller) {
      const validation = validateLogin(identifierText, password);
      if (!validation.ok) {
        throw new AuthError("INVALID_ARGUMENT", "the request has invalid fields", {
          fieldViolations: validation.violations,
        });
      }
      const { identifier } = validation;
      // One subject per account whatever the spelling: lookups ignore case, and so does the limit.
      const subject = identifier
        ? `${identifier.kind}:${identifier.value.toLowerCase()}`
        : identifierText;
      // Counted before the hash is checked, so parallel guesses cannot outrun the count.
      await consume("login_identifier", subject, caller);
      await consume("login_address", caller.clientAddress, caller);
      const stored = identifier && (await findUserByIdentifier(db, identifier));
      if (!stored) {
        await hasher.verifyDummy(password, caller.signal);
        audit({ event: "login_failed", caller, reason: "unknown_identifier" });
        throw invalidCredentials();
      }
      // A disabled user pays the full verify too: same answer, same time.
      const passwordMatches = await hasher.verify(stored.passwordHash, password, caller.signal);
      if (!passwordMatches || stored.disabled) {
        audit({
          event: "login_failed",
          caller,
          userId: stored.user.id,
          reason: passwordMatches ? "disabled" : "wrong_password",
        });
        throw invalidCredentials();
      }
      await rateLimiter.settle(
        { rule: "login_identifier", subject },
        { rule: "login_address", subject: caller.clientAddress },
      );
      if (hasher.needsRehash(stored.passwordHash)) {
        await updatePasswordHash(db, stored.user.id, await hasher.hash(password, caller.signal));
      }
      return stored.user;
    },
  };
}

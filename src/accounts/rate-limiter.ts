import { createHash } from "node:crypto";
import { AuthError } from "../auth-error.js";
import type { Clock } from "../clock.js";
import type { RateLimit } from "../config.js";
import type { Database } from "../db/database.js";
import { hitRateLimit, pruneRateLimits, resetAndRefundRateLimits } from "../db/rate-limits.js";

/** What is limited: failed logins per identifier and per client address, sign-ups per address. */
export type RateLimitRule = "login_identifier" | "login_address" | "signup_address";

export interface RateLimitSubject {
  rule: RateLimitRule;
  subject: string;
}

export interface RateLimiterOptions {
  db: Database;
  clock: Clock;
  rules: Record<RateLimitRule, RateLimit>;
}

export interface RateLimiter {
  /** Counts an attempt; RATE_LIMITED (with the wait) when it may not proceed. */
  consume(rule: RateLimitRule, subject: string): Promise<void>;
  /**
   * After a success: forgets every attempt of the `reset` subject and takes one counted
   * attempt back from the `refund` subject, in one database round trip.
   */
  settle(reset: RateLimitSubject, refund: RateLimitSubject): Promise<void>;
  /** Deletes counters too old to matter; run now and then. */
  prune(): Promise<void>;
}

/** Backoff beyond a limit never asks for more than this. */
export const MAX_BACKOFF_MS = 60 * 60 * 1000;

/** Subjects are hashed: identifiers are personal data, and a key has a fixed size whatever the input. */
function rateLimitKey(rule: RateLimitRule, subject: string): Uint8Array {
  return createHash("sha256").update(rule).update("\u0000").update(subject).digest();
}

/**
 * Limits backed by PostgreSQL, so every replica counts into the same rows. Within a
 * window the limit passes freely; beyond it the wait starts at window / limit (the
 * rate's own spacing) and doubles with each further attempt, up to MAX_BACKOFF_MS.
 */
export function createRateLimiter({ db, clock, rules }: RateLimiterOptions): RateLimiter {
  const longestWindowMs = Math.max(...Object.values(rules).map((rule) => rule.windowMs));
  return {
    async consume(rule, subject) {
      const { limit, windowMs } = rules[rule];
      const decision = await hitRateLimit(db, {
        key: rateLimitKey(rule, subject),
        now: new Date(clock()),
        limit,
        windowMs,
        backoffBaseMs: windowMs / limit,
        backoffMaxMs: MAX_BACKOFF_MS,
      });
      if (!decision.allowed) {
        throw new AuthError("RATE_LIMITED", "too many attempts; retry later", {
          metadata: { limit: rule },
          retryDelayMs: decision.retryAfterMs,
        });
      }
    },
    settle: (reset, refund) =>
      resetAndRefundRateLimits(
        db,
        rateLimitKey(reset.rule, reset.subject),
        rateLimitKey(refund.rule, refund.subject),
      ),
    prune: () => pruneRateLimits(db, new Date(clock() - MAX_BACKOFF_MS - longestWindowMs)),
  };
}

import { createHash, randomBytes, randomUUID } from "node:crypto";
import { invalidCredentials } from "../accounts/accounts.js";
import type { User } from "../accounts/user.js";
import type { AuditLog, Caller } from "../audit-log.js";
import { AuthError } from "../auth-error.js";
import type { Clock } from "../clock.js";
import type { Database } from "../db/database.js";
import {
  countRefreshTokenReuse,
  findUnusedChildToken,
  insertRefreshToken,
  insertSession,
  type LockedRefreshToken,
  lockRefreshToken,
  markRefreshTokenUsed,
  revokeSession,
  revokeUserSessions,
  rotateUsableRefreshToken,
} from "../db/sessions.js";
import type { AccessTokenIssuer } from "./access-tokens.js";

export interface TokenPair {
  accessToken: string;
  accessTokenExpireTime: Date;
  refreshToken: string;
  refreshTokenExpireTime: Date;
}

export interface SessionsOptions {
  db: Database;
  issueAccessToken: AccessTokenIssuer;
  clock: Clock;
  refreshTokenTtlMs: number;
  sessionMaxAgeMs: number;
  /** How long a rotated token may still be presented (REFRESH_REUSE_GRACE); 0 is strict. */
  reuseGraceMs: number;
  audit: AuditLog;
  /**
   * Told of the sessions a call revoked, once the revocation committed, so this replica
   * refuses their access tokens at once (others hear of it through the database).
   */
  onSessionsRevoked?: (sessionIds: string[], revokeTime: Date) => void;
}

export interface Sessions {
  /**
   * Starts a session for a user who just proved who they are; INVALID_CREDENTIALS when the
   * user was disabled meanwhile (while their password was being checked).
   */
  start(user: User, caller: Caller): Promise<TokenPair>;
  /** Rotates a refresh token: the presented one stops working, a new pair is returned. */
  refresh(refreshToken: string, caller: Caller): Promise<TokenPair>;
  /** Ends the token's session, or every session of its user. */
  logout(refreshToken: string, allSessions: boolean, caller: Caller): Promise<void>;
}

/** 256 random bits, base64url without padding. */
const REFRESH_TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;

function hashRefreshToken(token: string): Uint8Array {
  return createHash("sha256").update(token).digest();
}

function generateRefreshToken(): { token: string; tokenHash: Uint8Array } {
  const token = randomBytes(32).toString("base64url");
  return { token, tokenHash: hashRefreshToken(token) };
}

/** Hashes a presented token after checking its form; only hashes are ever stored or compared. */
function presentedTokenHash(token: string): Uint8Array {
  if (token === "") {
    throw new AuthError("INVALID_ARGUMENT", "refresh_token is required", {
      fieldViolations: [{ field: "refresh_token", description: "is required" }],
    });
  }
  if (!REFRESH_TOKEN_FORMAT.test(token)) {
    throw new AuthError("REFRESH_TOKEN_INVALID", "the refresh token is invalid");
  }
  return hashRefreshToken(token);
}

type RejectedToken =
  | "REFRESH_TOKEN_INVALID"
  | "SESSION_REVOKED"
  | "REFRESH_TOKEN_REUSED"
  | "REFRESH_TOKEN_EXPIRED";

const rejectionMessages: Record<RejectedToken, string> = {
  REFRESH_TOKEN_INVALID: "the refresh token is invalid",
  SESSION_REVOKED: "the session has been revoked",
  REFRESH_TOKEN_REUSED: "the refresh token was already used; the session has been revoked",
  REFRESH_TOKEN_EXPIRED: "the refresh token has expired",
};

/** Within REFRESH_REUSE_GRACE, a rotated token may come back at most this many times. */
export const MAX_GRACE_REUSES = 2;

type TokenCheck =
  | { usable: LockedRefreshToken; supersedes?: Uint8Array }
  | { rejected: RejectedToken; locked?: LockedRefreshToken; revokedSessionIds?: string[] };

/**
 * Decides whether a locked token may be used. A token that was already rotated is
 * reuse (RFC 9700 §4.14.2): its session is revoked in the same transaction. The one
 * exception is the grace window: the immediate parent of the session's newest token,
 * presented again soon after its rotation (two tabs, a retried request), may be used
 * up to MAX_GRACE_REUSES times; using it supersedes that newest token.
 */
async function lockUsableToken(
  trx: Database,
  tokenHash: Uint8Array,
  now: Date,
  reuseGraceMs: number,
): Promise<TokenCheck> {
  const locked = await lockRefreshToken(trx, tokenHash);
  if (locked === undefined) {
    return { rejected: "REFRESH_TOKEN_INVALID" };
  }
  if (locked.sessionRevokeTime !== null) {
    return { rejected: "SESSION_REVOKED", locked };
  }
  let supersedes: Uint8Array | undefined;
  if (locked.tokenUseTime !== null) {
    const withinGrace =
      now.getTime() - locked.tokenUseTime.getTime() < reuseGraceMs &&
      locked.tokenReuseCount < MAX_GRACE_REUSES;
    supersedes = withinGrace ? await findUnusedChildToken(trx, tokenHash) : undefined;
    if (supersedes === undefined) {
      const revokedSessionIds = await revokeSession(
        trx,
        locked.sessionId,
        now,
        "refresh_token_reused",
      );
      return { rejected: "REFRESH_TOKEN_REUSED", locked, revokedSessionIds };
    }
  }
  // No leeway: the token is dead at its expire time.
  if (locked.tokenExpireTime <= now || locked.sessionExpireTime <= now) {
    return { rejected: "REFRESH_TOKEN_EXPIRED", locked };
  }
  return { usable: locked, supersedes };
}

function rejection(reason: RejectedToken): AuthError {
  return new AuthError(reason, rejectionMessages[reason]);
}

export function createSessions(options: SessionsOptions): Sessions {
  const { db, issueAccessToken, clock, refreshTokenTtlMs, sessionMaxAgeMs, reuseGraceMs, audit } =
    options;
  const announceRevoked = (sessionIds: string[] | undefined, revokeTime: Date) => {
    if (sessionIds !== undefined && sessionIds.length > 0) {
      options.onSessionsRevoked?.(sessionIds, revokeTime);
    }
  };

  /** Throws the rejection, after an audit line when it revoked the session. */
  function reject(
    check: { rejected: RejectedToken; locked?: LockedRefreshToken },
    caller: Caller,
  ): never {
    if (check.rejected === "REFRESH_TOKEN_REUSED") {
      audit({
        event: "refresh_token_reused",
        caller,
        userId: check.locked?.user.id,
        sessionId: check.locked?.sessionId,
      });
    }
    throw rejection(check.rejected);
  }

  /** A new refresh token for a session, never outliving the session itself. */
  function newRefreshToken(
    sessionId: string,
    now: Date,
    sessionExpireTime: Date,
    parentHash?: Uint8Array,
  ) {
    const { token, tokenHash } = generateRefreshToken();
    const expireTime = new Date(
      Math.min(now.getTime() + refreshTokenTtlMs, sessionExpireTime.getTime()),
    );
    return {
      token,
      record: {
        tokenHash,
        parentHash,
        sessionId,
        createTime: now,
        expireTime,
      },
    };
  }

  function tokenPair(
    user: User,
    sessionId: string,
    refreshToken: string,
    refreshTokenExpireTime: Date,
  ): TokenPair {
    const access = issueAccessToken(user, sessionId);
    return {
      accessToken: access.token,
      accessTokenExpireTime: access.expireTime,
      refreshToken,
      refreshTokenExpireTime,
    };
  }

  return {
    async start(user, caller) {
      const now = new Date(clock());
      const sessionId = randomUUID();
      const expireTime = new Date(now.getTime() + sessionMaxAgeMs);
      const refresh = newRefreshToken(sessionId, now, expireTime);
      const started = await insertSession(
        db,
        { id: sessionId, userId: user.id, createTime: now, expireTime },
        refresh.record,
      );
      if (!started) {
        // Disabled while its password was being checked: the answer a disabled user gets.
        audit({ event: "login_failed", caller, userId: user.id, reason: "disabled" });
        throw invalidCredentials();
      }
      audit({ event: "login_succeeded", caller, userId: user.id, sessionId });
      return tokenPair(user, sessionId, refresh.token, refresh.record.expireTime);
    },

    async refresh(refreshToken, caller) {
      const tokenHash = presentedTokenHash(refreshToken);
      const now = new Date(clock());
      // The common case, an unused token of a live session, in one statement.
      const nextToken = generateRefreshToken();
      const rotated = await rotateUsableRefreshToken(db, {
        tokenHash,
        nextTokenHash: nextToken.tokenHash,
        now,
        nextExpireTime: new Date(now.getTime() + refreshTokenTtlMs),
      });
      if (rotated !== undefined) {
        const { user, sessionId, nextExpireTime } = rotated;
        audit({ event: "refresh", caller, userId: user.id, sessionId, reason: "rotation" });
        return tokenPair(user, sessionId, nextToken.token, nextExpireTime);
      }
      // Anything else (reuse, grace, revoked, expired, unknown) is decided under the row lock,
      // which makes concurrent refreshes of one token take turns: exactly one rotates it.
      // Rejections are returned, not thrown, so that a reuse revocation commits.
      const outcome = await db.transaction().execute(async (trx) => {
        const check = await lockUsableToken(trx, tokenHash, now, reuseGraceMs);
        if ("rejected" in check) {
          return check;
        }
        const { sessionId, sessionExpireTime, user } = check.usable;
        if (check.supersedes) {
          await markRefreshTokenUsed(trx, check.supersedes, now);
          await countRefreshTokenReuse(trx, tokenHash);
        } else {
          await markRefreshTokenUsed(trx, tokenHash, now);
        }
        const next = newRefreshToken(sessionId, now, sessionExpireTime, tokenHash);
        await insertRefreshToken(trx, next.record);
        return { user, sessionId, graceReuse: check.supersedes !== undefined, next };
      });
      if ("rejected" in outcome) {
        announceRevoked(outcome.revokedSessionIds, now);
        return reject(outcome, caller);
      }
      const { user, sessionId, graceReuse, next } = outcome;
      audit({
        event: "refresh",
        caller,
        userId: user.id,
        sessionId,
        reason: graceReuse ? "grace_reuse" : "rotation",
      });
      return tokenPair(user, sessionId, next.token, next.record.expireTime);
    },

    async logout(refreshToken, allSessions, caller) {
      const tokenHash = presentedTokenHash(refreshToken);
      const now = new Date(clock());
      const check = await db.transaction().execute(async (trx) => {
        const locked = await lockUsableToken(trx, tokenHash, now, reuseGraceMs);
        if ("rejected" in locked) {
          return locked;
        }
        const { user, sessionId } = locked.usable;
        const revokedSessionIds = allSessions
          ? await revokeUserSessions(trx, user.id, now, "logout")
          : await revokeSession(trx, sessionId, now, "logout");
        return { ...locked, revokedSessionIds };
      });
      announceRevoked(check.revokedSessionIds, now);
      if ("rejected" in check) {
        return reject(check, caller);
      }
      audit({
        event: "logout",
        caller,
        userId: check.usable.user.id,
        sessionId: check.usable.sessionId,
        reason: allSessions ? "all_sessions" : "session",
      });
    },
  };
}

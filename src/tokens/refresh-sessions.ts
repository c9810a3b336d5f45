import { createHash, randomBytes, randomUUID } from "node:crypto";
import type { User } from "../accounts/user.js";
import { AuthError } from "../auth-error.js";
import type { Clock } from "../clock.js";
import type { Database } from "../db/database.js";
import {
  insertRefreshToken,
  insertSession,
  type LockedRefreshToken,
  lockRefreshToken,
  markRefreshTokenUsed,
  revokeSession,
  revokeUserSessions,
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
  /**
   * Told of the sessions a call revoked, once the revocation committed, so this replica
   * refuses their access tokens at once (others hear of it through the database).
   */
  onSessionsRevoked?: (sessionIds: string[], revokeTime: Date) => void;
}

export interface Sessions {
  /** Starts a session for a user who just proved who they are. */
  start(user: User): Promise<TokenPair>;
  /** Rotates a refresh token: the presented one stops working, a new pair is returned. */
  refresh(refreshToken: string): Promise<TokenPair>;
  /** Ends the token's session, or every session of its user. */
  logout(refreshToken: string, allSessions: boolean): Promise<void>;
}

/** 256 random bits, base64url without padding. */
const REFRESH_TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;

function hashRefreshToken(token: string): Uint8Array {
  return createHash("sha256").update(token).digest();
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

/**
 * Decides whether a locked token may be used. A token that was already rotated is
 * reuse (RFC 9700 §4.14.2): its session is revoked in the same transaction.
 */
async function lockUsableToken(
  trx: Database,
  tokenHash: Uint8Array,
  now: Date,
): Promise<
  { usable: LockedRefreshToken } | { rejected: RejectedToken; revokedSessionIds?: string[] }
> {
  const locked = await lockRefreshToken(trx, tokenHash);
  if (locked === undefined) {
    return { rejected: "REFRESH_TOKEN_INVALID" };
  }
  if (locked.sessionRevokeTime !== null) {
    return { rejected: "SESSION_REVOKED" };
  }
  if (locked.tokenUseTime !== null) {
    const revokedSessionIds = await revokeSession(
      trx,
      locked.sessionId,
      now,
      "refresh_token_reused",
    );
    return { rejected: "REFRESH_TOKEN_REUSED", revokedSessionIds };
  }
  // No leeway: the token is dead at its expire time.
  if (locked.tokenExpireTime <= now || locked.sessionExpireTime <= now) {
    return { rejected: "REFRESH_TOKEN_EXPIRED" };
  }
  return { usable: locked };
}

function rejection(reason: RejectedToken): AuthError {
  return new AuthError(reason, rejectionMessages[reason]);
}

export function createSessions(options: SessionsOptions): Sessions {
  const { db, issueAccessToken, clock, refreshTokenTtlMs, sessionMaxAgeMs } = options;
  const announceRevoked = (sessionIds: string[] | undefined, revokeTime: Date) => {
    if (sessionIds !== undefined && sessionIds.length > 0) {
      options.onSessionsRevoked?.(sessionIds, revokeTime);
    }
  };

  /** A new refresh token for a session, never outliving the session itself. */
  function newRefreshToken(sessionId: string, now: Date, sessionExpireTime: Date) {
    const token = randomBytes(32).toString("base64url");
    const expireTime = new Date(
      Math.min(now.getTime() + refreshTokenTtlMs, sessionExpireTime.getTime()),
    );
    return {
      token,
      record: { tokenHash: hashRefreshToken(token), sessionId, createTime: now, expireTime },
    };
  }

  function tokenPair(
    user: User,
    sessionId: string,
    refresh: { token: string; record: { expireTime: Date } },
  ): TokenPair {
    const access = issueAccessToken(user, sessionId);
    return {
      accessToken: access.token,
      accessTokenExpireTime: access.expireTime,
      refreshToken: refresh.token,
      refreshTokenExpireTime: refresh.record.expireTime,
    };
  }

  return {
    async start(user) {
      const now = new Date(clock());
      const sessionId = randomUUID();
      const expireTime = new Date(now.getTime() + sessionMaxAgeMs);
      const refresh = newRefreshToken(sessionId, now, expireTime);
      await db.transaction().execute(async (trx) => {
        await insertSession(trx, { id: sessionId, userId: user.id, createTime: now, expireTime });
        await insertRefreshToken(trx, refresh.record);
      });
      return tokenPair(user, sessionId, refresh);
    },

    async refresh(refreshToken) {
      const tokenHash = presentedTokenHash(refreshToken);
      const now = new Date(clock());
      // The row lock makes concurrent refreshes of one token take turns: exactly one rotates it.
      // Rejections are returned, not thrown, so that a reuse revocation commits.
      const outcome = await db.transaction().execute(async (trx) => {
        const check = await lockUsableToken(trx, tokenHash, now);
        if ("rejected" in check) {
          return check;
        }
        const { sessionId, sessionExpireTime, user } = check.usable;
        await markRefreshTokenUsed(trx, tokenHash, now);
        const next = newRefreshToken(sessionId, now, sessionExpireTime);
        await insertRefreshToken(trx, next.record);
        return { pair: () => tokenPair(user, sessionId, next) };
      });
      if ("rejected" in outcome) {
        announceRevoked(outcome.revokedSessionIds, now);
        throw rejection(outcome.rejected);
      }
      return outcome.pair();
    },

    async logout(refreshToken, allSessions) {
      const tokenHash = presentedTokenHash(refreshToken);
      const now = new Date(clock());
      const check = await db.transaction().execute(async (trx) => {
        const locked = await lockUsableToken(trx, tokenHash, now);
        if ("rejected" in locked) {
          return locked;
        }
        const { user, sessionId } = locked.usable;
        return {
          revokedSessionIds: allSessions
            ? await revokeUserSessions(trx, user.id, now, "logout")
            : await revokeSession(trx, sessionId, now, "logout"),
        };
      });
      announceRevoked(check.revokedSessionIds, now);
      if ("rejected" in check) {
        throw rejection(check.rejected);
      }
    },
  };
}

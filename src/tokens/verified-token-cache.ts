import type { Clock } from "../clock.js";
import type { AccessTokenVerifier, VerifiedAccessToken } from "./access-tokens.js";
import type { RevocationList } from "./revocations.js";

export interface VerifiedTokenCacheOptions {
  /** Most tokens kept; the least recently used goes first. 0 keeps none. */
  maxEntries: number;
  clock: Clock;
}

/**
 * Access tokens whose signature and claims have been checked, so a token seen again is
 * answered without an ES256 verify. An entry lives until its token's exp at most.
 */
export interface VerifiedTokenCache {
  get(token: string): VerifiedAccessToken | undefined;
  set(token: string, verified: VerifiedAccessToken): void;
  /** Drops the tokens of revoked sessions. */
  forgetSessions(sessionIds: Iterable<string>): void;
  readonly size: number;
}

export function createVerifiedTokenCache(options: VerifiedTokenCacheOptions): VerifiedTokenCache {
  const { maxEntries, clock } = options;
  // A Map iterates in insertion order: re-inserting on a hit keeps the oldest first.
  const entries = new Map<string, VerifiedAccessToken>();
  const tokensBySession = new Map<string, Set<string>>();

  const remove = (token: string, verified: VerifiedAccessToken) => {
    entries.delete(token);
    const tokens = tokensBySession.get(verified.sessionId);
    tokens?.delete(token);
    if (tokens?.size === 0) {
      tokensBySession.delete(verified.sessionId);
    }
  };

  return {
    get(token) {
      const verified = entries.get(token);
      if (verified === undefined) {
        return undefined;
      }
      if (clock() >= verified.expireTime.getTime()) {
        remove(token, verified);
        return undefined;
      }
      entries.delete(token);
      entries.set(token, verified);
      return verified;
    },

    set(token, verified) {
      if (maxEntries === 0 || entries.has(token)) {
        return;
      }
      if (entries.size >= maxEntries) {
        const [oldestToken, oldest] = entries.entries().next().value as [
          string,
          VerifiedAccessToken,
        ];
        remove(oldestToken, oldest);
      }
      entries.set(token, verified);
      const tokens = tokensBySession.get(verified.sessionId);
      if (tokens === undefined) {
        tokensBySession.set(verified.sessionId, new Set([token]));
      } else {
        tokens.add(token);
      }
    },

    forgetSessions(sessionIds) {
      for (const sessionId of sessionIds) {
        for (const token of tokensBySession.get(sessionId) ?? []) {
          entries.delete(token);
        }
        tokensBySession.delete(sessionId);
      }
    },

    get size() {
      return entries.size;
    },
  };
}

/** A verifier that answers a token it has already verified from the cache. */
export function withVerifiedTokenCache(
  verify: AccessTokenVerifier,
  cache: VerifiedTokenCache,
): AccessTokenVerifier {
  return (token) => {
    const cached = cache.get(token);
    if (cached !== undefined) {
      return cached;
    }
    const verified = verify(token);
    cache.set(token, verified);
    return verified;
  };
}

/** Drops cached tokens as their sessions are revoked, until the revocation list closes. */
export function forgetRevokedTokens(revocations: RevocationList, cache: VerifiedTokenCache): void {
  const follow = async () => {
    for await (const update of revocations.watch(new AbortController().signal)) {
      cache.forgetSessions(update.sessionIds);
    }
  };
  void follow();
}

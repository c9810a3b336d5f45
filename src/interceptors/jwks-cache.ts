import type { Clock } from "../clock.js";
import { verificationKeysFromJwks } from "../tokens/jwks.js";
import type { VerificationKey } from "../tokens/signing-keys.js";

export interface JwksCacheOptions {
  /** Fetches the JWK Set (GetJwks). */
  fetchJwks(): Promise<string>;
  /** A refetch starts at most this often, however many unknown kids arrive. */
  minRefetchIntervalMs: number;
  clock: Clock;
  onError(error: unknown): void;
}

/** The auth service's public keys, fetched once and again when an unknown kid shows up. */
export interface JwksCache {
  find(kid: string): VerificationKey | undefined;
  /**
   * Refetches the keys, unless a fetch ran less than the minimum interval ago. Concurrent
   * calls share one fetch; a failed fetch keeps the last good keys.
   */
  refresh(): Promise<void>;
}

export function createJwksCache(options: JwksCacheOptions): JwksCache {
  const { fetchJwks, minRefetchIntervalMs, clock, onError } = options;
  let keys = new Map<string, VerificationKey>();
  let lastFetchStart = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;

  async function fetchKeys(): Promise<void> {
    try {
      const fetched = verificationKeysFromJwks(await fetchJwks());
      keys = new Map(fetched.map((key) => [key.kid, key]));
    } catch (error) {
      onError(error);
    }
  }

  return {
    find: (kid) => keys.get(kid),
    refresh() {
      if (inFlight !== undefined) {
        return inFlight;
      }
      if (clock() - lastFetchStart < minRefetchIntervalMs) {
        return Promise.resolve();
      }
      lastFetchStart = clock();
      inFlight = fetchKeys().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    },
  };
}

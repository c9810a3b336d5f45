import type { Clock } from "../clock.js";
import type { Database } from "../db/database.js";
import { listenForNotifications } from "../db/notifications.js";
import {
  listRevokedSessions,
  parseRevocationPayload,
  REVOCATION_CHANNEL,
  type Revocation,
} from "../db/sessions.js";

export type { Revocation };

/** One message of the WatchRevocations stream. */
export interface RevocationUpdate extends Revocation {
  /** True for the first message: every session revoked within the retention window. */
  snapshot: boolean;
}

export interface RevocationListOptions {
  clock: Clock;
  /**
   * How long a revocation matters: the access-token lifetime plus the clock leeway. After
   * that, every access token of the session has expired anyway.
   */
  retentionMs: number;
}

/** The sessions revoked recently, in memory, so Verify needs no database round trip. */
export interface RevocationList {
  isRevoked(sessionId: string): boolean;
  /** Records a revocation; subscribers hear of the sessions that were not known yet. */
  add(revocation: Revocation): void;
  /** Forgets revocations older than the retention window. */
  prune(): void;
  /** Every session revoked within the retention window. */
  snapshot(): string[];
  /**
   * The WatchRevocations stream: a snapshot, then one update per revocation, until the
   * signal aborts or the list is closed.
   */
  watch(signal: AbortSignal): AsyncIterable<RevocationUpdate>;
  /** Ends every watch (at shutdown, so that open streams do not hold it up). */
  close(): void;
}

export function createRevocationList(options: RevocationListOptions): RevocationList {
  const { clock, retentionMs } = options;
  const revokeTimes = new Map<string, number>();
  const listeners = new Set<(revocation: Revocation) => void>();
  const closing = new AbortController();

  return {
    isRevoked: (sessionId) => revokeTimes.has(sessionId),

    add({ sessionIds, revokeTime }) {
      const oldest = clock() - retentionMs;
      const fresh = sessionIds.filter(
        (id) => !revokeTimes.has(id) && revokeTime.getTime() >= oldest,
      );
      if (fresh.length === 0) {
        return;
      }
      for (const id of fresh) {
        revokeTimes.set(id, revokeTime.getTime());
      }
      for (const listener of listeners) {
        listener({ sessionIds: fresh, revokeTime });
      }
    },

    prune() {
      const oldest = clock() - retentionMs;
      for (const [id, revokeTime] of revokeTimes) {
        if (revokeTime < oldest) {
          revokeTimes.delete(id);
        }
      }
    },

    snapshot: () => [...revokeTimes.keys()],

    async *watch(signal) {
      const stop = AbortSignal.any([signal, closing.signal]);
      const queue: Revocation[] = [];
      let wake: (() => void) | undefined;
      const listener = (revocation: Revocation) => {
        queue.push(revocation);
        wake?.();
      };
      const onStop = () => wake?.();
      // Subscribed before the snapshot is taken, so nothing falls between the two.
      listeners.add(listener);
      stop.addEventListener("abort", onStop);
      try {
        yield {
          sessionIds: [...revokeTimes.keys()],
          revokeTime: new Date(clock()),
          snapshot: true,
        };
        while (!stop.aborted) {
          const next = queue.shift();
          if (next === undefined) {
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
            continue;
          }
          yield { ...next, snapshot: false };
        }
      } finally {
        listeners.delete(listener);
        stop.removeEventListener("abort", onStop);
      }
    },

    close: () => closing.abort(),
  };
}

export interface RevocationFeedOptions {
  db: Database;
  /** PostgreSQL URL, or undefined for the embedded PGlite. */
  databaseUrl: string | undefined;
  list: RevocationList;
  clock: Clock;
  retentionMs: number;
  /** How often revocations are re-read, so a missed notification heals. */
  syncIntervalMs: number;
  onError(error: unknown): void;
}

export interface RevocationFeed {
  /** Re-reads the revocations of the retention window from the database. */
  sync(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Keeps a revocation list current: loads it, then follows the notifications every
 * replica's revocations send, and re-reads it periodically and after each reconnect.
 * Resolves once the first load is done.
 */
export async function startRevocationFeed(options: RevocationFeedOptions): Promise<RevocationFeed> {
  const { db, databaseUrl, list, clock, retentionMs, syncIntervalMs, onError } = options;

  async function sync(): Promise<void> {
    const revocations = await listRevokedSessions(db, new Date(clock() - retentionMs));
    for (const revocation of revocations) {
      list.add(revocation);
    }
    list.prune();
  }

  const syncQuietly = () => sync().catch(onError);

  await sync();
  const listener = await listenForNotifications({
    db,
    url: databaseUrl,
    channel: REVOCATION_CHANNEL,
    onNotification(payload) {
      const revocation = parseRevocationPayload(payload);
      if (revocation !== undefined) {
        list.add(revocation);
      }
    },
    onListening: syncQuietly,
    onError,
  });
  const timer = setInterval(syncQuietly, syncIntervalMs);
  timer.unref();

  return {
    sync,
    async close() {
      clearInterval(timer);
      await listener.close();
    },
  };
}

import type { Clock } from "../clock.js";

/** A message of the WatchRevocations stream, as the watcher needs it. */
export interface RevocationMessage {
  sessionIds: readonly string[];
  snapshot: boolean;
}

export interface RevocationWatcherOptions {
  /** Opens the WatchRevocations stream; it ends or throws when the stream breaks. */
  watch(signal: AbortSignal): AsyncIterable<RevocationMessage>;
  /** Revocations older than this are forgotten: every token of the session has expired. */
  retentionMs: number;
  /** Reopen delays double from `minBackoffMs` up to `maxBackoffMs`. */
  minBackoffMs: number;
  maxBackoffMs: number;
  clock: Clock;
  /** Stops watching. */
  signal: AbortSignal | undefined;
  onError(error: unknown): void;
}

/** The revoked sessions as the auth service streams them. */
export interface RevocationWatcher {
  isRevoked(sessionId: string): boolean;
  /** Resolves once the first snapshot arrived. */
  ready: Promise<void>;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/**
 * Follows WatchRevocations: each (re)opened stream starts with a snapshot that replaces what
 * was known, then adds one revocation per message. A broken stream is reopened with backoff.
 */
export function createRevocationWatcher(options: RevocationWatcherOptions): RevocationWatcher {
  const { watch, retentionMs, minBackoffMs, maxBackoffMs, clock, onError } = options;
  const stop = options.signal ?? new AbortController().signal;
  let revokeTimes = new Map<string, number>();
  let markReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    markReady = resolve;
  });

  function prune(now: number) {
    for (const [id, seen] of revokeTimes) {
      if (seen < now - retentionMs) {
        revokeTimes.delete(id);
      }
    }
  }

  async function follow(): Promise<void> {
    let backoffMs = minBackoffMs;
    while (!stop.aborted) {
      try {
        for await (const message of watch(stop)) {
          const now = clock();
          if (message.snapshot) {
            revokeTimes = new Map(message.sessionIds.map((id) => [id, now]));
            backoffMs = minBackoffMs;
            markReady();
          } else {
            for (const id of message.sessionIds) {
              revokeTimes.set(id, now);
            }
            prune(now);
          }
        }
      } catch (error) {
        if (!stop.aborted) {
          onError(error);
        }
      }
      await sleep(backoffMs, stop);
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    }
  }

  void follow();
  return { isRevoked: (sessionId) => revokeTimes.has(sessionId), ready };
}

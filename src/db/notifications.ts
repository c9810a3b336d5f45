import pg from "pg";
import { type Database, embeddedInstance } from "./database.js";

export interface NotificationListenerOptions {
  db: Database;
  /** PostgreSQL URL: a dedicated connection LISTENs. Undefined: PGlite's in-process LISTEN. */
  url: string | undefined;
  channel: string;
  onNotification(payload: string): void;
  /**
   * Called each time listening (re)starts: notifications sent while it was down are lost,
   * so the caller catches up by querying.
   */
  onListening(): void;
  onError(error: unknown): void;
  /** Reconnect delays double from `minRetryMs` up to `maxRetryMs`. */
  minRetryMs?: number;
  maxRetryMs?: number;
}

export interface NotificationListener {
  close(): Promise<void>;
}

/**
 * LISTENs on a channel. On PostgreSQL a dedicated client (not one of the pool, whose
 * connections come and go) holds the LISTEN and reconnects with backoff when it is lost.
 */
export async function listenForNotifications(
  options: NotificationListenerOptions,
): Promise<NotificationListener> {
  const { db, url, channel, onNotification, onListening, onError } = options;
  if (url === undefined) {
    const pglite = embeddedInstance(db);
    if (pglite === undefined) {
      throw new Error("no URL and no embedded database to listen on");
    }
    const unlisten = await pglite.listen(channel, onNotification);
    onListening();
    // A database already closed has no listener left to remove.
    return { close: () => unlisten().catch(() => {}) };
  }

  const minRetryMs = options.minRetryMs ?? 100;
  const maxRetryMs = options.maxRetryMs ?? 5_000;
  let closed = false;
  let client: pg.Client | undefined;
  let retryMs = minRetryMs;
  let retryTimer: NodeJS.Timeout | undefined;

  const scheduleReconnect = () => {
    if (closed || retryTimer !== undefined) {
      return;
    }
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void connect();
    }, retryMs);
    retryMs = Math.min(retryMs * 2, maxRetryMs);
  };

  async function connect(): Promise<void> {
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    // A lost connection emits "error" and/or "end"; the first one schedules a new client.
    // While connecting, the failure arrives through connect() instead.
    const lost = (error?: unknown) => {
      if (client !== next) {
        return;
      }
      client = undefined;
      if (error !== undefined) {
        onError(error);
      }
      next.end().catch(() => {});
      scheduleReconnect();
    };
    next.on("error", lost);
    next.on("end", () => lost());
    next.on("notification", (message) => {
      if (message.channel === channel && message.payload !== undefined) {
        onNotification(message.payload);
      }
    });
    try {
      await next.connect();
      await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch (error) {
      onError(error);
      await next.end().catch(() => {});
      scheduleReconnect();
      return;
    }
    if (closed) {
      await next.end().catch(() => {});
      return;
    }
    client = next;
    retryMs = minRetryMs;
    onListening();
  }

  await connect();
  return {
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      await client?.end().catch(() => {});
    },
  };
}

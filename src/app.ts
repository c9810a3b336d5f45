import type { Logger } from "pino";
import { createAccounts } from "./accounts/accounts.js";
import { createArgon2idHasher, createQueuedHasher } from "./accounts/password-hasher.js";
import { createRateLimiter } from "./accounts/rate-limiter.js";
import { createAuditLog } from "./audit-log.js";
import type { Clock } from "./clock.js";
import type { Config } from "./config.js";
import { type Database, openDatabase, pingDatabase } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";
import { createAuthHandlers } from "./rpc/auth-handlers.js";
import { createEnvoyAuthorizationHandlers } from "./rpc/envoy-authorization.js";
import { createServers, type TransportLimits } from "./server.js";
import {
  createAccessTokenIssuer,
  createAccessTokenVerifier,
  withRevocationCheck,
} from "./tokens/access-tokens.js";
import { loadKeySet } from "./tokens/key-store.js";
import { createSessions } from "./tokens/refresh-sessions.js";
import {
  createRevocationList,
  type RevocationFeed,
  startRevocationFeed,
} from "./tokens/revocations.js";

/** Old rate-limit counters are deleted this often. */
const RATE_LIMIT_PRUNE_INTERVAL_MS = 10 * 60 * 1000;

export interface AppOptions {
  config: Config;
  clock: Clock;
  logger: Logger;
  /** How often the database is pinged to keep the health status current. */
  healthCheckIntervalMs?: number;
  /** Overrides of the transport limits (tests shorten the timeouts). */
  transportLimits?: Partial<TransportLimits>;
}

export interface App {
  port: number;
  httpPort: number;
  db: Database;
  /** Stops serving (bounded by SHUTDOWN_TIMEOUT) and closes the database. */
  close(): Promise<void>;
}

/** Opens the database, migrates it, builds the service and starts listening. */
export async function startApp(options: AppOptions): Promise<App> {
  const { config, clock, logger } = options;
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  let revocationFeed: RevocationFeed | undefined;
  try {
    const applied = await migrateToLatest(db);
    if (applied.length > 0) {
      logger.info({ migrations: applied }, "database migrated");
    }
    const keys = await loadKeySet(config);
    if (
      config.databaseUrl !== undefined &&
      keys.signer.algorithm === "ES256" &&
      !config.jwtPrivateKeyPem &&
      !config.jwtPrivateKeyFile &&
      !config.jwtKeysDir
    ) {
      logger.warn(
        "signing keys kept in DATA_DIR: replicas must share them (set JWT_KEYS_DIR or JWT_PRIVATE_KEY_FILE)",
      );
    }
    // A revoked session matters while its access tokens can still pass: their lifetime
    // plus the leeway.
    const retentionMs = config.accessTokenTtlMs + config.clockToleranceMs;
    const revocations = createRevocationList({ clock, retentionMs });
    revocationFeed = await startRevocationFeed({
      db,
      databaseUrl: config.databaseUrl,
      list: revocations,
      clock,
      retentionMs,
      syncIntervalMs: config.revocationSyncIntervalMs,
      onError: (error) => logger.warn({ err: error }, "revocation feed"),
    });
    const audit = createAuditLog(logger);
    const rateLimiter = createRateLimiter({
      db,
      clock,
      rules: {
        login_identifier: config.rateLimitLoginIdentifier,
        login_address: config.rateLimitLoginAddress,
        signup_address: config.rateLimitSignUpAddress,
      },
    });
    const hasher = createQueuedHasher(createArgon2idHasher(config.argon2), {
      concurrency: config.hashConcurrency,
      maxQueued: config.hashQueueMax,
    });
    const accounts = createAccounts({ db, hasher, clock, rateLimiter, audit });
    const sessions = createSessions({
      db,
      clock,
      issueAccessToken: createAccessTokenIssuer({
        key: keys.signer,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
        ttlMs: config.accessTokenTtlMs,
        clock,
      }),
      refreshTokenTtlMs: config.refreshTokenTtlMs,
      sessionMaxAgeMs: config.sessionMaxAgeMs,
      reuseGraceMs: config.refreshReuseGraceMs,
      audit,
      onSessionsRevoked: (sessionIds, revokeTime) => revocations.add({ sessionIds, revokeTime }),
    });
    const verifyAccessToken = withRevocationCheck(
      createAccessTokenVerifier({
        findKey: keys.find,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
        clockToleranceMs: config.clockToleranceMs,
        clock,
      }),
      revocations.isRevoked,
    );
    const servers = createServers({
      handlers: createAuthHandlers({
        accounts,
        sessions,
        verifyAccessToken,
        revocations,
        jwksJson: keys.jwksJson,
        trustProxy: config.trustProxy,
      }),
      envoyAuthorization: createEnvoyAuthorizationHandlers({ verifyAccessToken }),
      jwksJson: keys.jwksJson,
      limits: options.transportLimits,
      onInternalError: (error, procedure) =>
        logger.error({ err: error, procedure }, "internal error"),
    });
    const ports = await servers.listen({
      host: config.host,
      port: config.port,
      httpPort: config.httpPort,
    });

    let serving = true;
    servers.setServing(true);
    const healthTimer = setInterval(async () => {
      const up = await pingDatabase(db);
      if (up !== serving) {
        serving = up;
        servers.setServing(up);
        logger.warn({ serving: up }, up ? "database is back" : "database unreachable");
      }
    }, options.healthCheckIntervalMs ?? 5_000);
    healthTimer.unref();
    const pruneTimer = setInterval(() => {
      rateLimiter
        .prune()
        .catch((error: unknown) => logger.warn({ err: error }, "rate limit prune failed"));
    }, RATE_LIMIT_PRUNE_INTERVAL_MS);
    pruneTimer.unref();

    return {
      ...ports,
      db,
      async close() {
        clearInterval(healthTimer);
        clearInterval(pruneTimer);
        servers.setServing(false);
        // Open WatchRevocations streams end first: they would hold the shutdown up.
        revocations.close();
        await servers.shutdown(config.shutdownTimeoutMs);
        await revocationFeed?.close();
        await db.destroy();
      },
    };
  } catch (error) {
    await revocationFeed?.close();
    await db.destroy();
    throw error;
  }
}

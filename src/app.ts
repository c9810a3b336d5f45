import type { Logger } from "pino";
import { Registry } from "prom-client";
import { AuthService } from "../gen/auth/v1/auth_pb.js";
import { createAccounts } from "./accounts/accounts.js";
import { instrumentPasswordHasher } from "./accounts/instrumented-password-hasher.js";
import { createArgon2idHasher, createQueuedHasher } from "./accounts/password-hasher.js";
import { createRateLimiter } from "./accounts/rate-limiter.js";
import { createAuditLog } from "./audit-log.js";
import type { Clock } from "./clock.js";
import type { Config } from "./config.js";
import { type Database, openDatabase, pingDatabase, poolUsage } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";
import { countActiveSessions } from "./db/sessions.js";
import { createAdminServer } from "./observability/admin-server.js";
import { createMetrics, type ServiceMetrics } from "./observability/metrics.js";
import { databaseSpanRecorder, startTracing } from "./observability/tracing.js";
import { createAuthHandlers } from "./rpc/auth-handlers.js";
import { createEnvoyAuthorizationHandlers } from "./rpc/envoy-authorization.js";
import { observeHandlers } from "./rpc/observed-handlers.js";
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
import type { KeySet } from "./tokens/signing-keys.js";
import {
  createVerifiedTokenCache,
  forgetRevokedTokens,
  withVerifiedTokenCache,
} from "./tokens/verified-token-cache.js";

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
  /** Where the metrics go; a new registry when not given (never prom-client's global one). */
  registry?: Registry;
  /**
   * True in a cluster worker (WORKERS > 1): the primary has already migrated the database and
   * prepared the signing keys, and serves the admin port, so this app does neither.
   */
  clusterWorker?: boolean;
}

export interface App {
  port: number;
  httpPort: number;
  /** Admin HTTP port: /metrics, /healthz, /readyz; undefined in a cluster worker. */
  adminPort: number | undefined;
  db: Database;
  /** The service's metrics, with registration points for later parts (revoked-session cache). */
  metrics: ServiceMetrics;
  /** Stops serving (bounded by SHUTDOWN_TIMEOUT) and closes the database. */
  close(): Promise<void>;
}

export interface PrepareOptions {
  db: Database;
  config: Config;
  logger: Logger;
}

/**
 * The work done once before serving: applies pending migrations and loads the signing keys,
 * generating the first one into DATA_DIR on a first start. A cluster primary does it before
 * forking, so that its workers find the schema and one shared key set.
 */
export async function prepareToServe({ db, config, logger }: PrepareOptions): Promise<KeySet> {
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
  return keys;
}

/** Opens the database, migrates it, builds the service and starts listening. */
export async function startApp(options: AppOptions): Promise<App> {
  const { config, clock, logger } = options;
  const tracing = config.otlpEndpoint
    ? await startTracing({ endpoint: config.otlpEndpoint, serviceName: config.serviceName })
    : undefined;
  const tracer = tracing?.tracer;
  const db = await openDatabase({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    preparedStatements: config.databasePreparedStatements,
    onQuery: tracer && databaseSpanRecorder(tracer),
  });
  const metrics = createMetrics({
    registry: options.registry ?? new Registry(),
    poolUsage: () => poolUsage(db),
  });
  let revocationFeed: RevocationFeed | undefined;
  try {
    const keys = options.clusterWorker
      ? await loadKeySet(config)
      : await prepareToServe({ db, config, logger });
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
    metrics.registerRevokedSessionCache(() => revocations.snapshot().length);
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
    // Measured around the queue: the depth gauge counts hashes waiting and running.
    const hasher = instrumentPasswordHasher(
      createQueuedHasher(createArgon2idHasher(config.argon2), {
        concurrency: config.hashConcurrency,
        maxQueued: config.hashQueueMax,
      }),
      { metrics, tracer },
    );
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
    const verifiedTokens = createVerifiedTokenCache({
      maxEntries: config.verifyCacheSize,
      clock,
    });
    forgetRevokedTokens(revocations, verifiedTokens);
    // The revocation check runs on every call, cached token or not.
    const verifyAccessToken = withRevocationCheck(
      withVerifiedTokenCache(
        createAccessTokenVerifier({
          findKey: keys.find,
          issuer: config.jwtIssuer,
          audience: config.jwtAudience,
          clockToleranceMs: config.clockToleranceMs,
          clock,
        }),
        verifiedTokens,
      ),
      revocations.isRevoked,
    );
    const servers = createServers({
      handlers: observeHandlers(
        AuthService,
        createAuthHandlers({
          accounts,
          sessions,
          verifyAccessToken,
          revocations,
          jwksJson: keys.jwksJson,
          trustProxy: config.trustProxy,
        }),
        { metrics, logger, tracer },
      ),
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
    const admin = options.clusterWorker
      ? undefined
      : createAdminServer({
          registry: metrics.registry,
          notReadyReason: async () =>
            (await pingDatabase(db)) ? undefined : "database unreachable",
        });
    const adminPort = await admin?.listen(config.host, config.adminPort);

    const countSessions = async () => {
      try {
        metrics.activeSessions.set(await countActiveSessions(db, new Date(clock())));
      } catch (error) {
        logger.warn({ err: error }, "active sessions could not be counted");
      }
    };
    await countSessions();
    const sessionsTimer = setInterval(countSessions, config.activeSessionsIntervalMs);
    sessionsTimer.unref();

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
      adminPort,
      db,
      metrics,
      async close() {
        clearInterval(healthTimer);
        clearInterval(pruneTimer);
        clearInterval(sessionsTimer);
        servers.setServing(false);
        // Open WatchRevocations streams end first: they would hold the shutdown up.
        revocations.close();
        await servers.shutdown(config.shutdownTimeoutMs);
        await admin?.close();
        await revocationFeed?.close();
        await db.destroy();
        await tracing?.shutdown();
      },
    };
  } catch (error) {
    await revocationFeed?.close();
    await db.destroy();
    await tracing?.shutdown();
    throw error;
  }
}

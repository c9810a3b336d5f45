import type { Logger } from "pino";
import { Registry } from "prom-client";
import { AuthService } from "../gen/auth/v1/auth_pb.js";
import { createAccounts } from "./accounts/accounts.js";
import { instrumentPasswordHasher } from "./accounts/instrumented-password-hasher.js";
import { createArgon2idHasher } from "./accounts/password-hasher.js";
import type { Clock } from "./clock.js";
import type { Config } from "./config.js";
import { type Database, openDatabase, pingDatabase, poolUsage } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";
import { countActiveSessions } from "./db/sessions.js";
import { createAdminServer } from "./observability/admin-server.js";
import { createMetrics, type ServiceMetrics } from "./observability/metrics.js";
import { databaseSpanRecorder, startTracing } from "./observability/tracing.js";
import { createAuthHandlers } from "./rpc/auth-handlers.js";
import { observeHandlers } from "./rpc/observed-handlers.js";
import { createServers } from "./server.js";
import { createAccessTokenIssuer, createAccessTokenVerifier } from "./tokens/access-tokens.js";
import { createSessions } from "./tokens/refresh-sessions.js";
import { jwkSetJson, loadSigningKey } from "./tokens/signing-keys.js";

export interface AppOptions {
  config: Config;
  clock: Clock;
  logger: Logger;
  /** How often the database is pinged to keep the health status current. */
  healthCheckIntervalMs?: number;
  /** Where the metrics go; a new registry when not given (never prom-client's global one). */
  registry?: Registry;
}

export interface App {
  port: number;
  httpPort: number;
  /** Admin HTTP port: /metrics, /healthz, /readyz. */
  adminPort: number;
  db: Database;
  /** The service's metrics, with registration points for later parts (revoked-session cache). */
  metrics: ServiceMetrics;
  /** Stops serving (bounded by SHUTDOWN_TIMEOUT) and closes the database. */
  close(): Promise<void>;
}

/** Opens the database, migrates it, builds the service and starts listening. */
export async function startApp(options: AppOptions): Promise<App> {
  const { config, clock, logger } = options;
  const tracing = config.otlpEndpoint
    ? startTracing({ endpoint: config.otlpEndpoint, serviceName: config.serviceName })
    : undefined;
  const tracer = tracing?.tracer;
  const db = await openDatabase({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    onQuery: tracer && databaseSpanRecorder(tracer),
  });
  const metrics = createMetrics({
    registry: options.registry ?? new Registry(),
    poolUsage: () => poolUsage(db),
  });
  try {
    const applied = await migrateToLatest(db);
    if (applied.length > 0) {
      logger.info({ migrations: applied }, "database migrated");
    }
    const key = await loadSigningKey(config);
    if (
      config.databaseUrl !== undefined &&
      key.algorithm === "ES256" &&
      !config.jwtPrivateKeyPem &&
      !config.jwtPrivateKeyFile
    ) {
      logger.warn(
        "signing key generated in DATA_DIR: replicas must share one key (set JWT_PRIVATE_KEY_FILE)",
      );
    }
    const hasher = instrumentPasswordHasher(createArgon2idHasher(config.argon2), {
      metrics,
      tracer,
    });
    const accounts = createAccounts({ db, hasher, clock });
    const sessions = createSessions({
      db,
      clock,
      issueAccessToken: createAccessTokenIssuer({
        key,
        issuer: config.jwtIssuer,
        audience: config.jwtAudience,
        ttlMs: config.accessTokenTtlMs,
        clock,
      }),
      refreshTokenTtlMs: config.refreshTokenTtlMs,
      sessionMaxAgeMs: config.sessionMaxAgeMs,
    });
    const verifyAccessToken = createAccessTokenVerifier({
      findKey: (kid) => (kid === key.kid ? key : undefined),
      issuer: config.jwtIssuer,
      audience: config.jwtAudience,
      clockToleranceMs: config.clockToleranceMs,
      clock,
    });
    const servers = createServers({
      handlers: observeHandlers(
        AuthService,
        createAuthHandlers({ accounts, sessions, verifyAccessToken, jwksJson: jwkSetJson([key]) }),
        { metrics, logger, tracer },
      ),
      onInternalError: (error, procedure) =>
        logger.error({ err: error, procedure }, "internal error"),
    });
    const ports = await servers.listen({
      host: config.host,
      port: config.port,
      httpPort: config.httpPort,
    });
    const admin = createAdminServer({
      registry: metrics.registry,
      isReady: () => pingDatabase(db),
    });
    const adminPort = await admin.listen(config.host, config.adminPort);

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

    return {
      ...ports,
      adminPort,
      db,
      metrics,
      async close() {
        clearInterval(healthTimer);
        clearInterval(sessionsTimer);
        servers.setServing(false);
        await servers.shutdown(config.shutdownTimeoutMs);
        await admin.close();
        await db.destroy();
        await tracing?.shutdown();
      },
    };
  } catch (error) {
    await db.destroy();
    await tracing?.shutdown();
    throw error;
  }
}

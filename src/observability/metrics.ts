import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";

/** How busy the database connections are; PGlite is one connection, always there. */
export interface PoolUsage {
  total: number;
  idle: number;
  waiting: number;
}

/** What one answered RPC tells the metrics. */
export interface ObservedCall {
  /** `auth.v1.AuthService/Login` */
  method: string;
  /** Which port answered: grpc-js or connect-node. */
  server: "grpc" | "connect";
  /** gRPC status name, `OK` on success. */
  code: string;
  /** The AuthError reason (DESIGN.md §2), when the call failed with one. */
  reason: string | undefined;
  seconds: number;
}

export interface MetricsOptions {
  /** Every series goes here; each app has its own, so two servers in one process never collide. */
  registry: Registry;
  poolUsage: () => PoolUsage;
}

export interface ServiceMetrics {
  registry: Registry;
  /** Counts a call by method, server and code, times it, and counts its error reason. */
  observeCall(call: ObservedCall): void;
  /** Password hashes submitted and not yet finished: waiting for a worker thread or running. */
  argon2QueueDepth: Gauge;
  /** Time a password hash waits for a slot; fed by the hashing queue (issue 4) once it exists. */
  argon2QueueWaitSeconds: Histogram;
  /** Time from submitting a hash or verify to its result. */
  argon2DurationSeconds: Histogram<"operation">;
  /** Live sessions, recounted periodically (ACTIVE_SESSIONS_INTERVAL). */
  activeSessions: Gauge;
  /**
   * Registration point for the revoked-session cache (issue 3): the gauge
   * `auth_revoked_session_cache_size` reads `size()` at each scrape; 0 until registered.
   */
  registerRevokedSessionCache(size: () => number): void;
}

/** Seconds buckets for RPCs: a Verify takes about a millisecond, a Login tens to hundreds. */
const RPC_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const ARGON2_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** Creates every series of the service in the given registry, plus Node's process metrics. */
export function createMetrics({ registry, poolUsage }: MetricsOptions): ServiceMetrics {
  const registers = [registry];
  collectDefaultMetrics({ register: registry });

  const rpcRequests = new Counter({
    name: "auth_rpc_requests_total",
    help: "RPCs answered, by method, server (grpc or connect) and gRPC status code.",
    labelNames: ["method", "server", "code"] as const,
    registers,
  });
  const rpcDuration = new Histogram({
    name: "auth_rpc_duration_seconds",
    help: "Time from receiving a decoded request to answering it, by method and server.",
    labelNames: ["method", "server"] as const,
    buckets: RPC_BUCKETS,
    registers,
  });
  const errors = new Counter({
    name: "auth_rpc_errors_total",
    help: "Domain errors answered, by ErrorInfo reason.",
    labelNames: ["reason"] as const,
    registers,
  });
  const refreshTokenReuse = new Counter({
    name: "auth_refresh_token_reuse_detections_total",
    help: "Already-rotated refresh tokens presented again (each revoked its session).",
    registers,
  });
  const rateLimitRefusals = new Counter({
    name: "auth_rate_limit_refusals_total",
    help: "Calls refused with RATE_LIMITED.",
    registers,
  });

  const argon2QueueDepth = new Gauge({
    name: "auth_argon2_queue_depth",
    help: "Password hashes and verifies submitted and not yet finished.",
    registers,
  });
  const argon2QueueWaitSeconds = new Histogram({
    name: "auth_argon2_queue_wait_seconds",
    help: "Time a password hash waited in the hashing queue before it started.",
    buckets: ARGON2_BUCKETS,
    registers,
  });
  const argon2DurationSeconds = new Histogram({
    name: "auth_argon2_duration_seconds",
    help: "Time from submitting a password hash or verify to its result, by operation.",
    labelNames: ["operation"] as const,
    buckets: ARGON2_BUCKETS,
    registers,
  });

  new Gauge({
    name: "auth_db_pool_connections",
    help: "Database connections by state (total, idle, waiting clients); PGlite counts as 1.",
    labelNames: ["state"] as const,
    registers,
    collect() {
      const usage = poolUsage();
      this.set({ state: "total" }, usage.total);
      this.set({ state: "idle" }, usage.idle);
      this.set({ state: "waiting" }, usage.waiting);
    },
  });
  // Each cluster worker counts the same table and holds the same revocation list: the
  // primary reports one worker's value (the largest), not their sum.
  const activeSessions = new Gauge({
    name: "auth_active_sessions",
    help: "Sessions neither revoked nor past their absolute lifetime, recounted periodically.",
    registers,
    aggregator: "max",
  });
  let revokedSessionCacheSize: () => number = () => 0;
  new Gauge({
    name: "auth_revoked_session_cache_size",
    help: "Entries in the in-memory revoked-session cache.",
    registers,
    aggregator: "max",
    collect() {
      this.set(revokedSessionCacheSize());
    },
  });

  return {
    registry,
    observeCall({ method, server, code, reason, seconds }) {
      rpcRequests.inc({ method, server, code });
      rpcDuration.observe({ method, server }, seconds);
      if (reason !== undefined) {
        errors.inc({ reason });
        if (reason === "REFRESH_TOKEN_REUSED") {
          refreshTokenReuse.inc();
        } else if (reason === "RATE_LIMITED") {
          rateLimitRefusals.inc();
        }
      }
    },
    argon2QueueDepth,
    argon2QueueWaitSeconds,
    argon2DurationSeconds,
    activeSessions,
    registerRevokedSessionCache(size) {
      revokedSessionCacheSize = size;
    },
  };
}

/** The cluster primary's own series, served beside its workers' aggregated ones. */
export interface ClusterMetrics {
  /** Workers listening now. */
  workers: Gauge;
  /** Workers replaced after exiting unexpectedly. */
  workerRestarts: Counter;
}

export function createClusterMetrics(registry: Registry): ClusterMetrics {
  return {
    workers: new Gauge({
      name: "auth_cluster_workers",
      help: "Cluster workers listening (WORKERS > 1).",
      registers: [registry],
    }),
    workerRestarts: new Counter({
      name: "auth_cluster_worker_restarts_total",
      help: "Cluster workers replaced after exiting unexpectedly.",
      registers: [registry],
    }),
  };
}

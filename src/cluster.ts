import type { Cluster, Worker } from "node:cluster";
import type { Logger } from "pino";
import { AggregatorRegistry, type PrometheusContentType, Registry } from "prom-client";
import { prepareToServe, startApp } from "./app.js";
import { CliError } from "./cli-error.js";
import type { Clock } from "./clock.js";
import type { Config } from "./config.js";
import { openDatabase, pingDatabase } from "./db/database.js";
import { type AdminServer, createAdminServer } from "./observability/admin-server.js";
import { type ClusterMetrics, createClusterMetrics } from "./observability/metrics.js";

/**
 * Multi-process mode (WORKERS > 1). The primary does the one-time work (migrations, the
 * signing keys in DATA_DIR), serves the admin port and supervises the workers; each worker
 * runs the normal app on PORT and HTTP_PORT, whose listening sockets node:cluster shares
 * (the primary accepts connections and hands them to the workers in turn).
 */

/** Worker → primary, once its app listens. */
const WORKER_LISTENING = "auth-service:worker-listening";
/** Primary → worker: drain and exit, as on the signal it carries. */
const STOP = "auth-service:stop";

interface WorkerListeningMessage {
  type: typeof WORKER_LISTENING;
  port: number;
  httpPort: number;
}

interface StopMessage {
  type: typeof STOP;
  signal: NodeJS.Signals;
}

function isMessage<T extends { type: string }>(message: unknown, type: T["type"]): message is T {
  return (
    typeof message === "object" && message !== null && "type" in message && message.type === type
  );
}

/** How workers that exit unexpectedly are replaced, so that a crash loop does not spin. */
export interface RestartPolicy {
  /** Wait before forking a replacement. */
  delayMs: number;
  /** At most this many replacements within `windowMs`; one more stops the cluster. */
  maxRestarts: number;
  windowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  delayMs: 1_000,
  maxRestarts: 5,
  windowMs: 60_000,
};

/** Replacements within the policy's sliding window. */
export interface RestartBudget {
  /** Counts one replacement when the window has room for it; false when it has none. */
  take(): boolean;
}

export function createRestartBudget(policy: RestartPolicy, clock: Clock): RestartBudget {
  const taken: number[] = [];
  return {
    take() {
      const now = clock();
      while (taken.length > 0 && (taken[0] ?? now) <= now - policy.windowMs) {
        taken.shift();
      }
      if (taken.length >= policy.maxRestarts) {
        return false;
      }
      taken.push(now);
      return true;
    },
  };
}

/** After SIGTERM, a worker gets SHUTDOWN_TIMEOUT plus this to exit before it is killed. */
const STOP_GRACE_MS = 5_000;

export interface ClusterPrimaryOptions {
  config: Config;
  clock: Clock;
  logger: Logger;
  /** node:cluster, in the primary process. */
  cluster: Cluster;
  /** Resolves with the signal that asks the service to stop. */
  waitForStopSignal: () => Promise<NodeJS.Signals>;
  restartPolicy?: RestartPolicy;
}

/**
 * Runs the cluster primary: prepares the database and keys once, serves the admin port
 * (the workers' metrics aggregated; ready while every worker listens and the database
 * answers), forks WORKERS workers and replaces one that dies. On the stop signal, each
 * worker drains as a single process would; resolves once all have exited. Throws a
 * CliError when a worker fails to start, workers keep dying, or one does not stop cleanly.
 */
export async function runClusterPrimary(options: ClusterPrimaryOptions): Promise<void> {
  const { config, logger } = options;
  // One connection: the migrations, then the readiness pings.
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
  let admin: AdminServer | undefined;
  try {
    await prepareToServe({ db, config, logger });
    const registry = new Registry();
    const workerMetrics = new AggregatorRegistry<PrometheusContentType>();
    let adminPort: number | undefined;
    const workers = superviseWorkers({
      ...options,
      restartPolicy: options.restartPolicy ?? DEFAULT_RESTART_POLICY,
      metrics: createClusterMetrics(registry),
      onAllListening: ({ port, httpPort }) =>
        logger.info(
          {
            grpc: `${config.host}:${port}`,
            http: `${config.host}:${httpPort}`,
            admin: `${config.host}:${adminPort}`,
            database: "postgresql",
            tracing: config.otlpEndpoint !== undefined,
            workers: config.workers,
          },
          "auth-service listening",
        ),
    });
    admin = createAdminServer({
      registry: {
        contentType: registry.contentType,
        // The workers' series summed (gauges that say so: the largest), then the primary's own.
        metrics: async () => (await workerMetrics.clusterMetrics()) + (await registry.metrics()),
      },
      notReadyReason: async () =>
        workers.notReadyReason() ?? ((await pingDatabase(db)) ? undefined : "database unreachable"),
    });
    adminPort = await admin.listen(config.host, config.adminPort);
    const stopSignal = options.waitForStopSignal();
    workers.start();
    void stopSignal.then((signal) => {
      logger.info({ signal }, "shutting down");
      workers.stop(signal);
    });
    await workers.exited;
    logger.info("stopped");
  } finally {
    await admin?.close();
    await db.destroy();
  }
}

interface SupervisorOptions {
  config: Config;
  clock: Clock;
  logger: Logger;
  cluster: Cluster;
  restartPolicy: RestartPolicy;
  metrics: ClusterMetrics;
  /** Called once, when WORKERS workers listen for the first time. */
  onAllListening(ports: WorkerListeningMessage): void;
}

interface WorkerSupervisor {
  /** Forks the workers. */
  start(): void;
  /** Why the cluster cannot serve right now (starting, stopping); undefined when it can. */
  notReadyReason(): string | undefined;
  /** Asks every worker to drain and exit, as on `signal`. */
  stop(signal: NodeJS.Signals): void;
  /**
   * Resolves once every worker has exited after a stop; rejects with a CliError when one
   * failed to start, workers kept dying, or one did not stop cleanly.
   */
  exited: Promise<void>;
}

/** Forks the workers, replaces one that exits unexpectedly, stops them all on request. */
function superviseWorkers(options: SupervisorOptions): WorkerSupervisor {
  const { config, logger, cluster, restartPolicy, metrics } = options;
  const restarts = createRestartBudget(restartPolicy, options.clock);
  const alive = new Set<Worker>();
  const listening = new Map<number, WorkerListeningMessage>();
  const restartTimers = new Set<NodeJS.Timeout>();
  let killTimer: NodeJS.Timeout | undefined;
  let announced = false;
  let stopping = false;
  let failure: string | undefined;
  let resolveExited = () => {};
  let rejectExited = (_failure: CliError) => {};
  const exited = new Promise<void>((resolve, reject) => {
    resolveExited = resolve;
    rejectExited = reject;
  });

  const fork = () => {
    const worker = cluster.fork();
    alive.add(worker);
    logger.info({ worker: worker.id, workerPid: worker.process.pid }, "worker started");
  };

  const finish = () => {
    clearTimeout(killTimer);
    cluster.off("message", onMessage);
    cluster.off("exit", onExit);
    if (failure === undefined) {
      resolveExited();
    } else {
      rejectExited(new CliError(failure));
    }
  };

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      return;
    }
    stopping = true;
    for (const timer of restartTimers) {
      clearTimeout(timer);
    }
    for (const worker of alive) {
      if (listening.has(worker.id)) {
        const message: StopMessage = { type: STOP, signal };
        // A worker dying at this moment cannot take it; its exit is heard anyway.
        worker.send(message, () => {});
      } else {
        // Still starting: it may not hear messages yet, and has no call in flight to drain.
        worker.process.kill("SIGTERM");
      }
    }
    if (alive.size === 0) {
      finish();
      return;
    }
    killTimer = setTimeout(() => {
      for (const worker of alive) {
        logger.error({ worker: worker.id, workerPid: worker.process.pid }, "worker killed");
        worker.process.kill("SIGKILL");
      }
    }, config.shutdownTimeoutMs + STOP_GRACE_MS);
  };

  const fail = (reason: string) => {
    failure ??= reason;
    logger.error(reason);
    stop("SIGTERM");
  };

  function onMessage(worker: Worker, message: unknown) {
    if (!isMessage<WorkerListeningMessage>(message, WORKER_LISTENING) || stopping) {
      return;
    }
    listening.set(worker.id, message);
    metrics.workers.set(listening.size);
    if (!announced && listening.size === config.workers) {
      announced = true;
      options.onAllListening(message);
    }
  }

  function onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null) {
    alive.delete(worker);
    const wasListening = listening.delete(worker.id);
    metrics.workers.set(listening.size);
    const facts = { worker: worker.id, workerPid: worker.process.pid, code, signal };
    if (stopping) {
      if (wasListening && code !== 0) {
        failure ??= `worker ${worker.id} did not stop cleanly (code ${code}, signal ${signal})`;
        logger.error(facts, "worker exited");
      } else {
        logger.info(facts, "worker exited");
      }
      if (alive.size === 0) {
        finish();
      }
      return;
    }
    if (!announced) {
      // A start that fails (port taken, database away) would fail the same way again.
      fail(`worker ${worker.id} exited before the service listened (code ${code})`);
      return;
    }
    if (!restarts.take()) {
      fail(`workers keep exiting: worker ${worker.id} exited (code ${code}, signal ${signal})`);
      return;
    }
    logger.error({ ...facts, restartInMs: restartPolicy.delayMs }, "worker exited unexpectedly");
    metrics.workerRestarts.inc();
    const timer = setTimeout(() => {
      restartTimers.delete(timer);
      fork();
    }, restartPolicy.delayMs);
    restartTimers.add(timer);
  }

  return {
    start() {
      cluster.on("message", onMessage);
      cluster.on("exit", onExit);
      for (let i = 0; i < config.workers; i++) {
        fork();
      }
    },
    notReadyReason() {
      if (stopping) {
        return "stopping";
      }
      return listening.size < config.workers
        ? `${listening.size} of ${config.workers} workers listening`
        : undefined;
    },
    stop,
    exited,
  };
}

export interface ClusterWorkerOptions {
  config: Config;
  clock: Clock;
  logger: Logger;
  /** node:cluster's `worker` in this worker process. */
  worker: Worker;
  /** Resolves with a signal sent to this process itself (a terminal's Ctrl-C reaches all). */
  waitForStopSignal: () => Promise<NodeJS.Signals>;
}

/**
 * Runs one cluster worker: the normal app without the admin port, its metrics answered to
 * the primary's requests; it drains and returns on the primary's stop or its own signal.
 */
export async function serveClusterWorker(options: ClusterWorkerOptions): Promise<void> {
  const { config, clock, worker } = options;
  const logger = options.logger.child({ worker: worker.id });
  // Heard from before the app starts, so that a stop during the start is not lost.
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => {
    worker.on("message", (message: unknown) => {
      if (isMessage<StopMessage>(message, STOP)) {
        resolve(message.signal);
      }
    });
  });
  const stopSignal = Promise.race([options.waitForStopSignal(), stopRequested]);
  // prom-client answers the primary's metrics requests with the registries set here.
  const registry = new AggregatorRegistry<PrometheusContentType>();
  AggregatorRegistry.setRegistries(registry);
  const app = await startApp({ config, clock, logger, registry, clusterWorker: true });
  logger.info(
    { grpc: `${config.host}:${app.port}`, http: `${config.host}:${app.httpPort}` },
    "worker listening",
  );
  const listening: WorkerListeningMessage = {
    type: WORKER_LISTENING,
    port: app.port,
    httpPort: app.httpPort,
  };
  worker.send(listening);
  const signal = await stopSignal;
  logger.info({ signal }, "shutting down");
  await app.close();
  logger.info("stopped");
}

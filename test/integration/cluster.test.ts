import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import {
  connectGrpc,
  type GrpcAuthClient,
  grpcFailure,
  isolatedDatabase,
  newUser,
  spawnService,
} from "./harness.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const databaseUrl = process.env.TEST_DATABASE_URL;

const children: ChildProcess[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterAll(async () => {
  for (const child of children.splice(0)) {
    child.kill("SIGKILL");
  }
  for (const cleanup of cleanups.splice(0)) {
    await cleanup();
  }
});

type LogLine = Record<string, unknown> & { msg: string; pid: number };

/** `auth-service serve` with WORKERS=2 as a real process tree, on a database of its own. */
async function startCluster(environment: Record<string, string> = {}) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "auth-cluster-"));
  const database = await isolatedDatabase();
  cleanups.push(
    () => database.drop(),
    () => rm(dataDir, { recursive: true, force: true }),
  );
  const service = await spawnService(
    {
      WORKERS: "2",
      DATA_DIR: dataDir,
      DATABASE_URL: database.url ?? "",
      ARGON2_MEMORY_KIB: "1024",
      ARGON2_TIME_COST: "1",
      RATE_LIMIT_SIGNUP_ADDRESS: "1000000/1h",
      RATE_LIMIT_LOGIN_ADDRESS: "1000000/1h",
      ...environment,
    },
    (child) => children.push(child),
  );
  const logs = () => service.lines.map((line) => JSON.parse(line) as LogLine);
  const listening = logs().find((line) => line.msg === "auth-service listening");
  return {
    ...service,
    databaseUrl: database.url ?? "",
    logs,
    httpUrl: `http://${listening?.http}`,
    adminUrl: `http://${listening?.admin}`,
    /** Pids of the workers that logged they listen, in order. */
    workerPids: () =>
      logs()
        .filter((line) => line.msg === "worker listening")
        .map((line) => line.pid),
    /** The pid of the process that logged the call with this request id. */
    async pidOf(requestId: string): Promise<number> {
      let pid: number | undefined;
      await vi.waitFor(() => {
        pid = logs().find((line) => line.msg === "rpc" && line.requestId === requestId)?.pid;
        expect(pid).toBeDefined();
      });
      return pid as number;
    },
  };
}

type Cluster = Awaited<ReturnType<typeof startCluster>>;

/** A client on a connection of its own (grpc-js shares one per address otherwise). */
function ownConnection(address: string) {
  return connectGrpc(address, { "grpc.use_local_subchannel_pool": 1 });
}

/** Opens `count` connections and says which worker answered one call on each. */
async function connectionsByWorker(cluster: Cluster, count: number) {
  const connections = Array.from({ length: count }, () => ownConnection(cluster.address));
  return Promise.all(
    connections.map(async (connection) => {
      const requestId = randomUUID();
      await connection.client.getJwks({}, { "x-request-id": requestId });
      return { ...connection, pid: await cluster.pidOf(requestId) };
    }),
  );
}

async function scrape(cluster: Cluster): Promise<string> {
  const response = await fetch(`${cluster.adminUrl}/metrics`);
  expect(response.status).toBe(200);
  return response.text();
}

/** The value of one series in Prometheus text, 0 when it is absent. */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((entry) => entry.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

async function revokedSessionsInDatabase(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query(
      "SELECT count(*)::int AS n FROM sessions WHERE revoke_time IS NOT NULL",
    );
    return result.rows[0].n;
  } finally {
    await client.end();
  }
}

/** Signs a user up and logs in through `client`; returns the input and the tokens. */
async function loginThrough(client: GrpcAuthClient) {
  const input = newUser();
  await client.signUp(input);
  const { tokens } = await client.login({ identifier: input.username, password: input.password });
  if (!tokens) {
    throw new Error("login returned no tokens");
  }
  return { input, tokens };
}

// PGlite lives in one process; WORKERS > 1 needs PostgreSQL.
describe.runIf(databaseUrl)("WORKERS=2", () => {
  let cluster: Cluster;
  const opened: { close(): void }[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ ACTIVE_SESSIONS_INTERVAL: "1s" });
  });
  afterEach(() => {
    for (const connection of opened.splice(0)) {
      connection.close();
    }
  });

  it("forks two workers that serve gRPC and Connect on the same two ports", async () => {
    const workers = cluster.logs().filter((line) => line.msg === "worker listening");
    expect(workers.map((line) => line.worker)).toEqual(expect.arrayContaining([1, 2]));
    expect(new Set(workers.map((line) => line.pid)).size).toBe(2);
    expect(workers.map((line) => line.pid)).not.toContain(cluster.child.pid);
    expect(new Set(workers.map((line) => `${line.grpc} ${line.http}`)).size).toBe(1);

    const grpcConnection = ownConnection(cluster.address);
    opened.push(grpcConnection);
    const { input, tokens } = await loginThrough(grpcConnection.client);
    const connect = createClient(
      AuthService,
      createConnectTransport({ baseUrl: cluster.httpUrl, httpVersion: "1.1" }),
    );
    const verified = await connect.verify({ accessToken: tokens.accessToken });
    expect(verified.username).toBe(input.username);
    const jwks = await fetch(`${cluster.httpUrl}/.well-known/jwks.json`);
    expect(JSON.parse(await jwks.text()).keys).toHaveLength(1);
  });

  it("spreads connections over both workers, which sign with one shared key", async () => {
    const connections = await connectionsByWorker(cluster, 6);
    opened.push(...connections);
    const pids = new Set(connections.map((connection) => connection.pid));
    expect([...pids].sort()).toEqual([...cluster.workerPids()].sort());

    // A token issued by one worker verifies on the other.
    const [first] = connections;
    const other = connections.find((connection) => connection.pid !== first?.pid);
    const { tokens } = await loginThrough(first?.client as GrpcAuthClient);
    await expect(other?.client.verify({ accessToken: tokens.accessToken })).resolves.toBeDefined();
  });

  it("refuses on worker B, within 1 s, a session logged out on worker A", async () => {
    const connections = await connectionsByWorker(cluster, 6);
    opened.push(...connections);
    const onA = connections[0] as (typeof connections)[number];
    const onB = connections.find((connection) => connection.pid !== onA.pid);
    expect(onB).toBeDefined();
    const b = onB as typeof onA;

    const { tokens } = await loginThrough(onA.client);
    // Verified once on B: the token is in B's verified-token cache, which the revocation
    // feed must evict.
    await b.client.verify({ accessToken: tokens.accessToken });
    const logoutId = randomUUID();
    await onA.client.logout({ refreshToken: tokens.refreshToken }, { "x-request-id": logoutId });
    const loggedOut = performance.now();
    let refusedId = "";
    await vi.waitFor(
      async () => {
        refusedId = randomUUID();
        const failure = await grpcFailure(
          b.client.verify({ accessToken: tokens.accessToken }, { "x-request-id": refusedId }),
        );
        expect(failure).toMatchObject({
          code: grpc.status.UNAUTHENTICATED,
          reason: "SESSION_REVOKED",
        });
      },
      { timeout: 1_000, interval: 10 },
    );
    expect(performance.now() - loggedOut).toBeLessThan(1_000);
    expect(await cluster.pidOf(logoutId)).toBe(onA.pid);
    expect(await cluster.pidOf(refusedId)).toBe(b.pid);
  });

  it("serves the workers' metrics summed on the primary's admin port, and its probes", async () => {
    const series =
      'auth_rpc_requests_total{method="auth.v1.AuthService/GetJwks",server="grpc",code="OK"}';
    const before = sample(await scrape(cluster), series);
    const connections = await connectionsByWorker(cluster, 6);
    opened.push(...connections);
    // Both workers answered some: one worker's count alone would be short of 6.
    expect(new Set(connections.map((connection) => connection.pid)).size).toBe(2);
    const after = await scrape(cluster);
    expect(sample(after, series) - before).toBe(6);
    expect(sample(after, "auth_cluster_workers")).toBe(2);
    expect(sample(after, "auth_cluster_worker_restarts_total")).toBe(0);

    // Every worker holds the same revocation list: the primary reports it once, not twice.
    const [connection] = connections;
    const { tokens } = await loginThrough(connection?.client as GrpcAuthClient);
    await connection?.client.logout({ refreshToken: tokens.refreshToken });
    const revoked = await revokedSessionsInDatabase(cluster.databaseUrl);
    expect(revoked).toBeGreaterThan(0);
    await expect
      .poll(async () => sample(await scrape(cluster), "auth_revoked_session_cache_size"))
      .toBe(revoked);

    expect((await fetch(`${cluster.adminUrl}/healthz`)).status).toBe(200);
    const ready = await fetch(`${cluster.adminUrl}/readyz`);
    expect([ready.status, await ready.text()]).toEqual([200, "ready\n"]);
    expect((await fetch(`${cluster.adminUrl}/nothing`)).status).toBe(404);
  });

  it("replaces a worker that dies, and names it in the logs", async () => {
    const [doomed, survivor] = cluster.workerPids();
    process.kill(doomed as number, "SIGKILL");
    await vi.waitFor(
      () => {
        const exited = cluster
          .logs()
          .find((line) => line.msg === "worker exited unexpectedly" && line.workerPid === doomed);
        expect(exited).toMatchObject({ pid: cluster.child.pid, signal: "SIGKILL" });
        expect(exited?.worker).toEqual(expect.any(Number));
      },
      { timeout: 10_000 },
    );
    await vi.waitFor(() => expect(cluster.workerPids()).toHaveLength(3), { timeout: 30_000 });
    const replacement = cluster.workerPids()[2];
    expect([doomed, survivor]).not.toContain(replacement);

    await expect
      .poll(async () => (await fetch(`${cluster.adminUrl}/readyz`)).status, { timeout: 10_000 })
      .toBe(200);
    const connections = await connectionsByWorker(cluster, 6);
    opened.push(...connections);
    expect([...new Set(connections.map((connection) => connection.pid))].sort()).toEqual(
      [survivor, replacement].sort(),
    );
    const metrics = await scrape(cluster);
    expect(sample(metrics, "auth_cluster_worker_restarts_total")).toBe(1);
    expect(sample(metrics, "auth_cluster_workers")).toBe(2);
  });
});

describe.runIf(databaseUrl)("WORKERS=2 on SIGTERM", () => {
  it("lets the in-flight call finish, every worker drain, and exits 0", async () => {
    // A costly hash keeps the Login in flight when SIGTERM comes.
    const cluster = await startCluster({ ARGON2_TIME_COST: "40", ARGON2_MEMORY_KIB: "8192" });
    const { client, close } = ownConnection(cluster.address);
    const input = newUser();
    await client.signUp(input);
    const login = client.login({ identifier: input.username, password: input.password });
    await new Promise((resolve) => setTimeout(resolve, 100));
    // To the primary only, as Kubernetes or Docker send it.
    cluster.child.kill("SIGTERM");
    await expect(login).resolves.toMatchObject({ user: { username: input.username } });
    expect(await cluster.exited).toBe(0);
    close();

    const logs = cluster.logs();
    const stopped = logs.filter((line) => line.msg === "stopped");
    expect(stopped.map((line) => line.pid).sort()).toEqual(
      [...cluster.workerPids(), cluster.child.pid].sort(),
    );
    const exits = logs.filter((line) => line.msg === "worker exited");
    expect(exits.map((line) => [line.code, line.signal])).toEqual([
      [0, null],
      [0, null],
    ]);

    const late = connectGrpc(cluster.address);
    expect((await grpcFailure(late.client.getJwks({}))).code).toBe(grpc.status.UNAVAILABLE);
    late.close();
  });

  it("stops with exit code 1 when a worker cannot start", async () => {
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as net.AddressInfo).port;
    const database = await isolatedDatabase();
    const dataDir = await mkdtemp(path.join(tmpdir(), "auth-cluster-"));
    cleanups.push(
      () => database.drop(),
      () => rm(dataDir, { recursive: true, force: true }),
      () => new Promise((resolve) => taken.close(() => resolve())),
    );
    const run = await runService({
      WORKERS: "2",
      PORT: String(port),
      HTTP_PORT: "0",
      ADMIN_PORT: "0",
      HOST: "127.0.0.1",
      DATA_DIR: dataDir,
      DATABASE_URL: database.url ?? "",
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^auth-service: worker \d+ exited before the service listened/m);
  });
});

/** Runs `src/main.ts serve` to its end; only the given environment (and PATH). */
async function runService(environment: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...environment },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  child.stdout?.resume();
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { code, stderr };
}

describe("WORKERS=2 without DATABASE_URL", () => {
  it("refuses to start with one line naming WORKERS and exit code 2", async () => {
    const run = await runService({ WORKERS: "2" });
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toMatch(/^Invalid setting WORKERS: .*DATABASE_URL/);
  });
});

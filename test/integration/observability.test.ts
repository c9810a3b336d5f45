import { Writable } from "node:stream";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService, GetJwksRequestSchema } from "../../gen/auth/v1/auth_pb.js";
import { createLogger } from "../../src/observability/logger.js";
import { grpcClientDefinition } from "../../src/rpc/grpc-adapter.js";
import {
  connectFailure,
  grpcFailure,
  newUser,
  signUpAndLogin,
  startTestServer,
  type TestServer,
} from "./harness.js";

/** Log lines written by the server under test, parsed. */
const lines: Record<string, unknown>[] = [];
const logStream = new Writable({
  write(chunk, _encoding, callback) {
    for (const line of String(chunk).split("\n").filter(Boolean)) {
      lines.push(JSON.parse(line));
    }
    callback();
  },
});

let server: TestServer;
let other: TestServer;
beforeAll(async () => {
  server = await startTestServer(
    {},
    { logger: createLogger({ level: "info", destination: logStream }) },
  );
  // A second server in the same process: its own registry, no "already registered" clash.
  other = await startTestServer({ ACTIVE_SESSIONS_INTERVAL: "1s" });
});
afterAll(async () => {
  await server?.close();
  await other?.close();
});

async function scrape(target: TestServer): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${target.app.adminPort}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
  return response.text();
}

/** The value of one series in Prometheus text, 0 when it is absent. */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((entry) => entry.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

const LOGIN = "auth.v1.AuthService/Login";

/** One GetJwks over grpc-js; resolves with the response headers it got. */
function grpcCallHeaders(address: string, requestId?: string): Promise<grpc.Metadata> {
  const Client = grpc.makeGenericClientConstructor(grpcClientDefinition(AuthService), "Auth");
  const client: grpc.Client & {
    getJwks(
      request: unknown,
      metadata: grpc.Metadata,
      callback: (error: grpc.ServiceError | null) => void,
    ): grpc.ClientUnaryCall;
  } = new Client(address, grpc.credentials.createInsecure()) as never;
  const metadata = new grpc.Metadata();
  if (requestId) {
    metadata.set("x-request-id", requestId);
  }
  return new Promise((resolve, reject) => {
    let headers: grpc.Metadata | undefined;
    const unary = client.getJwks(create(GetJwksRequestSchema), metadata, (error) => {
      client.close();
      if (error) {
        reject(error);
      } else {
        resolve(headers ?? new grpc.Metadata());
      }
    });
    unary.on("metadata", (received) => {
      headers = received;
    });
  });
}

describe("the admin port", () => {
  it("answers liveness and readiness", async () => {
    const base = `http://127.0.0.1:${server.app.adminPort}`;
    const healthz = await fetch(`${base}/healthz`);
    expect(healthz.status).toBe(200);
    const readyz = await fetch(`${base}/readyz`);
    expect(readyz.status).toBe(200);
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
  });

  it("answers readiness 503 once the database is gone, liveness still 200", async () => {
    const doomed = await startTestServer();
    const base = `http://127.0.0.1:${doomed.app.adminPort}`;
    await doomed.app.db.destroy();
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    await doomed.close();
  });

  it("counts calls by method, server and code on both servers, with latency and reasons", async () => {
    const before = await scrape(server);
    const okSeries = `auth_rpc_requests_total{method="${LOGIN}",server="grpc",code="OK"}`;
    const deniedSeries = `auth_rpc_requests_total{method="${LOGIN}",server="connect",code="UNAUTHENTICATED"}`;
    const reusedSeries = "auth_refresh_token_reuse_detections_total";
    const latencySeries = `auth_rpc_duration_seconds_count{method="${LOGIN}",server="grpc"}`;
    const argon2Series = 'auth_argon2_duration_seconds_count{operation="verify"}';

    const { input, tokens } = await signUpAndLogin(server);
    await server.grpc.login({ identifier: input.username, password: input.password });
    const denied = await connectFailure(
      server.connect.login({ identifier: input.username, password: "wrong password!" }),
    );
    expect(denied.reason).toBe("INVALID_CREDENTIALS");
    await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    const reused = await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }));
    expect(reused.reason).toBe("REFRESH_TOKEN_REUSED");

    const after = await scrape(server);
    expect(sample(after, okSeries) - sample(before, okSeries)).toBe(2);
    expect(sample(after, deniedSeries) - sample(before, deniedSeries)).toBe(1);
    expect(sample(after, latencySeries) - sample(before, latencySeries)).toBe(2);
    expect(sample(after, reusedSeries) - sample(before, reusedSeries)).toBe(1);
    expect(
      sample(after, 'auth_rpc_errors_total{reason="INVALID_CREDENTIALS"}') -
        sample(before, 'auth_rpc_errors_total{reason="INVALID_CREDENTIALS"}'),
    ).toBe(1);
    // Three logins verified a password; sign-up hashed one.
    expect(sample(after, argon2Series) - sample(before, argon2Series)).toBe(3);
    expect(sample(after, 'auth_argon2_duration_seconds_count{operation="hash"}')).toBeGreaterThan(
      0,
    );
    expect(sample(after, "auth_argon2_queue_depth")).toBe(0);
    expect(sample(after, 'auth_db_pool_connections{state="total"}')).toBeGreaterThanOrEqual(1);
    for (const series of [
      "auth_active_sessions",
      "auth_revoked_session_cache_size",
      "auth_rate_limit_refusals_total",
      "auth_argon2_queue_wait_seconds_count",
      "process_cpu_user_seconds_total",
    ]) {
      expect(after).toMatch(new RegExp(`^${series} `, "m"));
    }
    // The other server's registry saw none of these calls.
    expect(sample(await scrape(other), okSeries)).toBe(0);
  });

  it("recounts active sessions periodically and sizes the revoked-session list", async () => {
    const before = sample(await scrape(other), "auth_revoked_session_cache_size");
    const loggedOut = await signUpAndLogin(other);
    await other.grpc.logout({ refreshToken: loggedOut.tokens.refreshToken });
    // At least: on a shared PostgreSQL database, other tests' revocations arrive too.
    expect(sample(await scrape(other), "auth_revoked_session_cache_size")).toBeGreaterThanOrEqual(
      before + 1,
    );
    await signUpAndLogin(other);
    // ACTIVE_SESSIONS_INTERVAL is 1s for this server; the login's session shows up at a recount.
    await expect
      .poll(async () => sample(await scrape(other), "auth_active_sessions"), {
        timeout: 10_000,
        interval: 250,
      })
      .toBeGreaterThanOrEqual(1);
  });
});

describe("request ids and call logs", () => {
  it("echoes a caller's x-request-id on gRPC and generates one when absent", async () => {
    const echoed = await grpcCallHeaders(server.grpcAddress, "req-grpc-1");
    expect(echoed.get("x-request-id")).toEqual(["req-grpc-1"]);
    const generated = await grpcCallHeaders(server.grpcAddress);
    expect(generated.get("x-request-id")[0]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("echoes it on Connect, on success and on error", async () => {
    let header: Headers | undefined;
    await server.connect.getJwks(
      {},
      { headers: { "x-request-id": "req-connect-1" }, onHeader: (h) => (header = h) },
    );
    expect(header?.get("x-request-id")).toBe("req-connect-1");
    try {
      await server.connect.refresh(
        { refreshToken: "x".repeat(43) },
        { headers: { "x-request-id": "req-connect-2" } },
      );
      expect.unreachable();
    } catch (error) {
      expect((error as { metadata: Headers }).metadata.get("x-request-id")).toBe("req-connect-2");
    }
  });

  it("writes one JSON line per call with method, code, duration and request id, and no secrets", async () => {
    const input = newUser();
    await server.grpc.signUp(input, { "x-request-id": "signup-log-1" });
    await server.grpc.login(
      { identifier: input.username, password: input.password },
      { "x-request-id": "login-log-1", authorization: "Bearer secret-token-value" },
    );
    await grpcFailure(
      server.grpc.login(
        { identifier: input.username, password: "not the password" },
        { "x-request-id": "login-log-2" },
      ),
    );
    const mine = lines.filter((line) =>
      ["signup-log-1", "login-log-1", "login-log-2"].includes(line.requestId as string),
    );
    expect(mine).toHaveLength(3);
    expect(mine.map((line) => [line.method, line.code, line.server])).toEqual([
      ["auth.v1.AuthService/SignUp", "OK", "grpc"],
      [LOGIN, "OK", "grpc"],
      [LOGIN, "UNAUTHENTICATED", "grpc"],
    ]);
    expect(mine[2]?.reason).toBe("INVALID_CREDENTIALS");
    for (const line of mine) {
      expect(line.msg).toBe("rpc");
      expect(typeof line.durationMs).toBe("number");
      expect(typeof line.time).toBe("number");
    }
    const everything = JSON.stringify(lines);
    expect(everything).not.toContain(input.password);
    expect(everything).not.toContain("secret-token-value");
  });

  it("replaces a request id that is not a short printable token", async () => {
    const headers = await grpcCallHeaders(server.grpcAddress, "bad id with spaces");
    expect(headers.get("x-request-id")[0]).toMatch(/^[0-9a-f-]{36}$/);
  });
});

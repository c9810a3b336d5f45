import net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  grpcFailure,
  newUser,
  signUpAndLogin,
  startTestServer,
  type TestServer,
} from "./harness.js";

const databaseUrl = process.env.TEST_DATABASE_URL;

/** A TCP proxy in front of PostgreSQL that the test can cut and restore. */
class CuttableProxy {
  private server = net.createServer((client) => this.accept(client));
  private sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {}

  private accept(client: net.Socket) {
    const upstream = net.connect(this.target.port, this.target.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }

  async open(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(this.port, "127.0.0.1", resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  /** Refuses new connections and breaks the open ones, as a database crash would. */
  async cut(): Promise<void> {
    if (!this.server.listening) {
      return;
    }
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await closed;
  }
}

// PGlite runs in process and cannot go away; this needs a real PostgreSQL server.
describe.runIf(databaseUrl)("a PostgreSQL outage", () => {
  let proxy: CuttableProxy;
  let server: TestServer;

  beforeAll(async () => {
    const url = new URL(databaseUrl ?? "");
    proxy = new CuttableProxy({ host: url.hostname, port: Number(url.port || 5432) });
    await proxy.open();
    url.hostname = "127.0.0.1";
    url.port = String(proxy.port);
    server = await startTestServer(
      { DATABASE_URL: url.toString() },
      { healthCheckIntervalMs: 100 },
    );
  });
  afterAll(async () => {
    await server?.close();
    await proxy?.cut();
  });

  it("answers UNAVAILABLE fast, reports NOT_SERVING, and recovers without a restart", async () => {
    const input = newUser();
    await server.grpc.signUp(input);
    const login = await server.grpc.login({ identifier: input.username, password: input.password });

    await proxy.cut();
    const started = Date.now();
    // Each failure is caught as the call starts, so none of them goes unhandled while another is awaited.
    for (const failure of [
      grpcFailure(server.grpc.login({ identifier: input.username, password: input.password })),
      grpcFailure(server.grpc.refresh({ refreshToken: login.tokens?.refreshToken ?? "" })),
      grpcFailure(server.grpc.signUp(newUser())),
    ]) {
      const error = await failure;
      expect(error).toMatchObject({ code: grpc.status.UNAVAILABLE, reason: "UNAVAILABLE" });
      expect(error.message).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|select|insert/i);
    }
    expect(Date.now() - started).toBeLessThan(15_000);

    const Health = grpc.makeGenericClientConstructor(healthService, "Health");
    const health = new Health(server.grpcAddress, grpc.credentials.createInsecure()) as unknown as {
      check(
        request: object,
        callback: (error: unknown, response: { status: string }) => void,
      ): void;
      close(): void;
    };
    const status = () =>
      new Promise<string>((resolve, reject) =>
        health.check({ service: "" }, (error, response) =>
          error ? reject(error) : resolve(response.status),
        ),
      );
    await expect.poll(status, { timeout: 10_000 }).toBe("NOT_SERVING");

    await proxy.open();
    await expect.poll(status, { timeout: 10_000 }).toBe("SERVING");
    health.close();
    // Nothing committed before the outage was lost, and the refresh token was not half-rotated.
    const { tokens } = await server.grpc.refresh({
      refreshToken: login.tokens?.refreshToken ?? "",
    });
    await server.grpc.verify({ accessToken: tokens?.accessToken ?? "" });
    await server.grpc.login({ identifier: input.email, password: input.password });
  });

  it("under load: fails fast, streams NOT_SERVING then SERVING, recovers and loses nothing", async () => {
    const Health = grpc.makeGenericClientConstructor(healthService, "Health");
    const health = new Health(server.grpcAddress, grpc.credentials.createInsecure()) as unknown as {
      watch(request: object): grpc.ClientReadableStream<{ status: string }>;
      close(): void;
    };
    const watched: string[] = [];
    const watch = health.watch({ service: "auth.v1.AuthService" });
    watch.on("data", (response) => watched.push(response.status));
    watch.on("error", () => {});
    await expect.poll(() => watched.at(-1), { timeout: 10_000 }).toBe("SERVING");

    const accounts = await Promise.all(Array.from({ length: 10 }, () => signUpAndLogin(server)));

    await proxy.cut();
    // A bounded load: 20 Logins and 20 Refreshes at once, each with a 20 s deadline.
    const timed = async (call: Promise<unknown>) => {
      const started = performance.now();
      const failure = await grpcFailure(call);
      return { failure, ms: performance.now() - started };
    };
    const results = await Promise.all(
      accounts.flatMap(({ input, tokens }) => [
        timed(server.grpc.login({ identifier: input.username, password: input.password })),
        timed(server.grpc.login({ identifier: input.email, password: "wrong password" })),
        timed(server.grpc.refresh({ refreshToken: tokens.refreshToken })),
        timed(server.grpc.refresh({ refreshToken: tokens.refreshToken })),
      ]),
    );
    for (const { failure } of results) {
      // UNAVAILABLE, not DEADLINE_EXCEEDED: each call failed well within its deadline.
      expect(failure).toMatchObject({ code: grpc.status.UNAVAILABLE, reason: "UNAVAILABLE" });
    }
    const latencies = results.map((result) => result.ms).sort((a, b) => a - b);
    await expect.poll(() => watched.at(-1), { timeout: 10_000 }).toBe("NOT_SERVING");

    await proxy.open();
    const reopened = performance.now();
    const [first] = accounts;
    await expect
      .poll(
        () =>
          server.grpc
            .login({
              identifier: first?.input.username ?? "",
              password: first?.input.password ?? "",
            })
            .then(
              () => true,
              () => false,
            ),
        { timeout: 15_000, interval: 50 },
      )
      .toBe(true);
    const recoveryMs = performance.now() - reopened;
    await expect.poll(() => watched.at(-1), { timeout: 10_000 }).toBe("SERVING");
    watch.cancel();
    health.close();
    console.info(
      `outage: ${results.length} calls, UNAVAILABLE latency median ${latencies[Math.floor(latencies.length / 2)]?.toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms; recovery ${recoveryMs.toFixed(0)} ms; health stream ${watched.join(" → ")}`,
    );

    // Every user and session committed before the outage is there; every refresh token
    // that failed during it still rotates exactly once (none half-rotated).
    for (const { input, tokens } of accounts) {
      await server.grpc.login({ identifier: input.username, password: input.password });
      await server.grpc.verify({ accessToken: tokens.accessToken });
      const rotated = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
      await server.grpc.verify({ accessToken: rotated.tokens?.accessToken ?? "" });
    }
  });
});

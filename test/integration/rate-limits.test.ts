import { randomInt } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  capturingLogger,
  grpcFailure,
  newUser,
  startTestServer,
  type TestServer,
} from "./harness.js";

/** A client address of its own per test (TEST-NET-2), so tests sharing a database do not meet. */
function uniqueAddress(): string {
  return `198.51.${randomInt(256)}.${randomInt(1, 255)}`;
}

const MINUTE = 60_000;

describe("rate limits", () => {
  let server: TestServer;
  const logs = capturingLogger();

  beforeAll(async () => {
    server = await startTestServer(
      {
        TRUST_PROXY: "true",
        RATE_LIMIT_LOGIN_IDENTIFIER: "5/15m",
        RATE_LIMIT_LOGIN_ADDRESS: "8/15m",
        RATE_LIMIT_SIGNUP_ADDRESS: "2/1h",
      },
      { logger: logs.logger },
    );
  });
  afterAll(() => server?.close());

  it("lets exactly the limit through when 50 wrong passwords for one identifier race", async () => {
    const input = newUser();
    await server.grpc.signUp(input, { "x-forwarded-for": uniqueAddress() });
    // Each from its own address, so only the identifier's limit applies.
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        grpcFailure(
          server.grpc.login(
            { identifier: input.username, password: "wrong password 1" },
            { "x-forwarded-for": uniqueAddress() },
          ),
        ),
      ),
    );
    const reasons = results.map((result) => result.reason);
    expect(reasons.filter((reason) => reason === "INVALID_CREDENTIALS")).toHaveLength(5);
    expect(reasons.filter((reason) => reason === "RATE_LIMITED")).toHaveLength(45);
    const limited = results.find((result) => result.reason === "RATE_LIMITED");
    expect(limited?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(limited?.retryDelayMs).toBeGreaterThan(0);
  });

  it("backs off exponentially beyond the limit, and a success resets the identifier", async () => {
    const input = newUser();
    const address = { "x-forwarded-for": uniqueAddress() };
    await server.grpc.signUp(input, { "x-forwarded-for": uniqueAddress() });
    const attempt = (password: string) =>
      server.grpc.login({ identifier: input.email.toUpperCase(), password }, address);
    const wrong = () => grpcFailure(attempt("wrong password 2"));
    for (let i = 0; i < 5; i += 1) {
      expect((await wrong()).reason).toBe("INVALID_CREDENTIALS");
    }
    // Beyond 5 per 15 minutes the wait starts at 15m / 5 = 3 minutes and doubles.
    const first = await wrong();
    expect(first).toMatchObject({ reason: "RATE_LIMITED", retryDelayMs: 3 * MINUTE });
    // Even the right password is refused while backing off, and the refusal changes nothing.
    expect((await grpcFailure(attempt(input.password))).retryDelayMs).toBe(3 * MINUTE);
    server.clock.advance(3 * MINUTE);
    expect((await wrong()).reason).toBe("INVALID_CREDENTIALS");
    expect((await wrong()).retryDelayMs).toBe(6 * MINUTE);
    server.clock.advance(6 * MINUTE);
    expect((await wrong()).reason).toBe("INVALID_CREDENTIALS");
    expect((await wrong()).retryDelayMs).toBe(12 * MINUTE);
    server.clock.advance(12 * MINUTE);
    await expect(attempt(input.password)).resolves.toMatchObject({
      user: { id: expect.any(String) },
    });
    // The success reset the counter: five more tries before any wait.
    for (let i = 0; i < 5; i += 1) {
      expect((await wrong()).reason).toBe("INVALID_CREDENTIALS");
    }
    expect((await wrong()).reason).toBe("RATE_LIMITED");
  });

  it("limits failed logins per client address, whatever the identifier", async () => {
    const address = { "x-forwarded-for": `${uniqueAddress()}, 10.0.0.1` };
    for (let i = 0; i < 8; i += 1) {
      const failure = await grpcFailure(
        server.grpc.login(
          { identifier: newUser().username, password: "wrong password 3" },
          address,
        ),
      );
      expect(failure.reason).toBe("INVALID_CREDENTIALS");
    }
    const limited = await grpcFailure(
      server.grpc.login({ identifier: newUser().username, password: "wrong password 3" }, address),
    );
    expect(limited).toMatchObject({ reason: "RATE_LIMITED", retryDelayMs: (15 * MINUTE) / 8 });
    // Another address is not affected.
    const other = await grpcFailure(
      server.grpc.login(
        { identifier: newUser().username, password: "wrong password 3" },
        { "x-forwarded-for": uniqueAddress() },
      ),
    );
    expect(other.reason).toBe("INVALID_CREDENTIALS");
  });

  it("does not count successful logins against the address", async () => {
    const address = { "x-forwarded-for": uniqueAddress() };
    const input = newUser();
    await server.grpc.signUp(input, { "x-forwarded-for": uniqueAddress() });
    for (let i = 0; i < 12; i += 1) {
      await server.grpc.login({ identifier: input.username, password: input.password }, address);
    }
  });

  it("limits sign-ups per client address and writes nothing for a refused one", async () => {
    const address = { "x-forwarded-for": uniqueAddress() };
    await server.grpc.signUp(newUser(), address);
    await server.grpc.signUp(newUser(), address);
    const refused = newUser();
    const failure = await grpcFailure(server.grpc.signUp(refused, address));
    expect(failure).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      reason: "RATE_LIMITED",
      retryDelayMs: 30 * MINUTE,
    });
    const rows = await server.app.db
      .selectFrom("users")
      .select("id")
      .where("username", "=", refused.username)
      .execute();
    expect(rows).toHaveLength(0);
    // The Connect protocol shares the limit and carries RetryInfo too.
    const viaConnect = await server.connect.signUp(newUser(), { headers: address }).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(viaConnect).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
    server.clock.advance(60 * MINUTE);
    await server.grpc.signUp(newUser(), address);
  });

  it("audits each refusal with the rule and the client address", () => {
    const refusals = logs.entries().filter((entry) => entry.event === "rate_limited");
    expect(refusals.length).toBeGreaterThan(45);
    expect(new Set(refusals.map((entry) => entry.reason))).toEqual(
      new Set(["login_identifier", "login_address", "signup_address"]),
    );
    expect(refusals.every((entry) => String(entry.client_address).startsWith("198.51."))).toBe(
      true,
    );
  });
});

describe("the client address", () => {
  it("is the peer's, not x-forwarded-for, unless TRUST_PROXY is set; also over h2c", async () => {
    const logs = capturingLogger();
    const server = await startTestServer({}, { logger: logs.logger });
    try {
      await server.grpc.signUp(newUser(), { "x-forwarded-for": "203.0.113.7" });
      await server.connect.signUp(newUser(), { headers: { "x-forwarded-for": "203.0.113.7" } });
      const { createClient } = await import("@connectrpc/connect");
      const { createGrpcTransport } = await import("@connectrpc/connect-node");
      const { AuthService } = await import("../../gen/auth/v1/auth_pb.js");
      const h2c = createClient(
        AuthService,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.app.httpPort}` }),
      );
      await h2c.signUp(newUser());
      const addresses = logs
        .entries()
        .filter((entry) => entry.event === "sign_up")
        .map((entry) => entry.client_address);
      expect(addresses).toEqual(["127.0.0.1", "127.0.0.1", "127.0.0.1"]);
    } finally {
      await server.close();
    }
  });
});

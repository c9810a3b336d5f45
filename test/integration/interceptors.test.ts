import type { Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTokenChecker } from "../../src/interceptors/index.js";
import { signUpAndLogin, startTestServer, type TestServer } from "./harness.js";

let server: TestServer;
const stop = new AbortController();
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  stop.abort();
  await server?.close();
});

/** A transport to the server that counts the calls made through it, by method. */
function countingTransport() {
  const calls: Record<string, number> = {};
  const count: Interceptor = (next) => (request) => {
    calls[request.method.name] = (calls[request.method.name] ?? 0) + 1;
    return next(request);
  };
  return {
    calls,
    transport: createGrpcTransport({
      baseUrl: `http://${server.grpcAddress}`,
      interceptors: [count],
    }),
  };
}

/** A local-mode checker on a counting transport, once it has its keys and first snapshot. */
async function readyLocalChecker() {
  const { calls, transport } = countingTransport();
  const checker = createTokenChecker({
    transport,
    clock: () => server.clock.now,
    signal: stop.signal,
  });
  await checker.ready();
  return { calls, checker };
}

describe("the token checker behind the interceptors", () => {
  it("verifies locally with no call per request: one GetJwks and one WatchRevocations", async () => {
    const { calls, checker } = await readyLocalChecker();
    const users = await Promise.all([signUpAndLogin(server), signUpAndLogin(server)]);
    for (let i = 0; i < 200; i++) {
      const { user, tokens } = users[i % 2] ?? users[0];
      const principal = await checker.check(`Bearer ${tokens.accessToken}`);
      expect(principal.userId).toBe(user.id);
    }
    expect(calls).toEqual({ GetJwks: 1, WatchRevocations: 1 });
  });

  it("refuses a logged-out session from the revocation stream, still with no call", async () => {
    const { calls, checker } = await readyLocalChecker();
    const { tokens } = await signUpAndLogin(server);
    await checker.check(`Bearer ${tokens.accessToken}`);
    await server.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
    await expect
      .poll(() =>
        checker.check(`Bearer ${tokens.accessToken}`).then(
          () => "accepted",
          (e) => e.reason,
        ),
      )
      .toBe("SESSION_REVOKED");
    expect(calls).toEqual({ GetJwks: 1, WatchRevocations: 1 });
  });

  it("calls Verify for every request in remote mode and passes its reasons on", async () => {
    const { calls, transport } = countingTransport();
    const checker = createTokenChecker({ transport, mode: "remote" });
    const { user, tokens } = await signUpAndLogin(server);
    for (let i = 0; i < 3; i++) {
      expect((await checker.check(`Bearer ${tokens.accessToken}`)).username).toBe(user.username);
    }
    expect(calls).toEqual({ Verify: 3 });
    await expect(checker.check("Bearer garbage")).rejects.toMatchObject({
      reason: "TOKEN_INVALID",
    });
    await expect(checker.check(undefined)).rejects.toMatchObject({ reason: "TOKEN_INVALID" });
    await server.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
    await expect(checker.check(`Bearer ${tokens.accessToken}`)).rejects.toMatchObject({
      reason: "SESSION_REVOKED",
    });
  });

  it("answers UNAVAILABLE in remote mode when the auth service cannot be reached", async () => {
    const checker = createTokenChecker({
      transport: createGrpcTransport({ baseUrl: "http://127.0.0.1:1" }),
      mode: "remote",
    });
    await expect(checker.check("Bearer a.b.c")).rejects.toMatchObject({ reason: "UNAVAILABLE" });
  });
});

import { timestampDate } from "@bufbuild/protobuf/wkt";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import jwt from "jsonwebtoken";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { AuthService, type WatchRevocationsResponse } from "../../gen/auth/v1/auth_pb.js";
import { revokeSession } from "../../src/db/sessions.js";
import { createTokenChecker } from "../../src/interceptors/index.js";
import { generateEs256Pem } from "../../src/tokens/signing-keys.js";
import { grpcFailure, signUpAndLogin, startTestServer, type TestServer } from "./harness.js";

const databaseUrl = process.env.TEST_DATABASE_URL;

const sessionIdOf = (accessToken: string) => (jwt.decode(accessToken) as { sid: string }).sid;

/** Reads a WatchRevocations stream into an array as messages arrive. */
function watch(server: TestServer) {
  const controller = new AbortController();
  const client = createClient(
    AuthService,
    createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }),
  );
  const messages: WatchRevocationsResponse[] = [];
  const done = (async () => {
    for await (const message of client.watchRevocations({}, { signal: controller.signal })) {
      messages.push(message);
    }
  })().catch(() => {});
  return {
    messages,
    async stop() {
      controller.abort();
      await done;
    },
  };
}

describe("WatchRevocations and Verify from memory", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ REVOCATION_SYNC_INTERVAL: "200ms" });
  });
  afterAll(async () => {
    await server?.close();
  });

  it("starts with a snapshot of recent revocations, then sends each new one", async () => {
    const earlier = await signUpAndLogin(server);
    await server.grpc.logout({ refreshToken: earlier.tokens.refreshToken, allSessions: false });
    const earlierSession = sessionIdOf(earlier.tokens.accessToken);

    const stream = watch(server);
    try {
      await expect.poll(() => stream.messages.length).toBe(1);
      const [snapshot] = stream.messages;
      expect(snapshot?.snapshot).toBe(true);
      expect(snapshot?.sessionIds).toContain(earlierSession);

      const later = await signUpAndLogin(server);
      const second = await server.grpc.login({
        identifier: later.input.username,
        password: later.input.password,
      });
      await server.grpc.logout({ refreshToken: later.tokens.refreshToken, allSessions: true });
      await expect.poll(() => stream.messages.length).toBe(2);
      const update = stream.messages[1];
      expect(update?.snapshot).toBe(false);
      const sessions = [later.tokens.accessToken, second.tokens?.accessToken ?? ""].map(
        sessionIdOf,
      );
      expect([...(update?.sessionIds ?? [])].sort()).toEqual(sessions.sort());
      expect(update?.revokeTime && timestampDate(update.revokeTime).getTime()).toBe(
        server.clock.now,
      );
    } finally {
      await stream.stop();
    }
  });

  it("streams over Connect and gRPC-Web on the HTTP port as well", async () => {
    for (const client of [server.connect, server.grpcWeb]) {
      const controller = new AbortController();
      const messages: WatchRevocationsResponse[] = [];
      const done = (async () => {
        for await (const message of client.watchRevocations({}, { signal: controller.signal })) {
          messages.push(message);
        }
      })().catch(() => {});
      await expect.poll(() => messages.length).toBe(1);
      expect(messages[0]?.snapshot).toBe(true);
      const { tokens } = await signUpAndLogin(server);
      await server.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
      await expect.poll(() => messages.length).toBe(2);
      expect(messages[1]?.sessionIds).toEqual([sessionIdOf(tokens.accessToken)]);
      controller.abort();
      await done;
    }
  });

  it("sends the session revoked by refresh-token reuse", async () => {
    const { tokens } = await signUpAndLogin(server);
    const stream = watch(server);
    try {
      await expect.poll(() => stream.messages.length).toBe(1);
      await server.grpc.refresh({ refreshToken: tokens.refreshToken });
      await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }));
      await expect.poll(() => stream.messages.length).toBe(2);
      const verified = await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }));
      expect(verified.reason).toBe("SESSION_REVOKED");
    } finally {
      await stream.stop();
    }
  });

  it("heals a missed notification with the periodic catch-up query", async () => {
    const { tokens } = await signUpAndLogin(server);
    const { sessionId } = await server.grpc.verify({ accessToken: tokens.accessToken });
    // Revoked behind the service's back: no notification is sent.
    await sql`update sessions set revoke_time = ${new Date(server.clock.now)} where id = ${sessionId}`.execute(
      server.app.db,
    );
    await expect
      .poll(
        async () =>
          (await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }))).reason,
      )
      .toBe("SESSION_REVOKED");
  });
});

describe("revocation notifications", () => {
  it("ends open WatchRevocations streams cleanly at shutdown, so they do not hold it up", async () => {
    const server = await startTestServer();
    const client = createClient(
      AuthService,
      createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` }),
    );
    const messages: WatchRevocationsResponse[] = [];
    const stream = (async () => {
      for await (const message of client.watchRevocations({})) {
        messages.push(message);
      }
      return "ended";
    })();
    await expect.poll(() => messages.length).toBe(1);
    await server.close();
    expect(await stream).toBe("ended");
  });

  it("hears a revocation it did not make through LISTEN (PGlite in-process, or PostgreSQL)", async () => {
    // The catch-up query runs every 30 s by default: only the notification can be this fast.
    const server = await startTestServer();
    try {
      const { tokens } = await signUpAndLogin(server);
      const { sessionId } = await server.grpc.verify({ accessToken: tokens.accessToken });
      await revokeSession(server.app.db, sessionId, new Date(server.clock.now), "logout");
      await expect
        .poll(
          async () =>
            (await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }))).reason,
          { timeout: 5_000 },
        )
        .toBe("SESSION_REVOKED");
    } finally {
      await server.close();
    }
  });
});

describe.runIf(databaseUrl)("two replicas on one PostgreSQL", () => {
  let replicaA: TestServer;
  let replicaB: TestServer;
  const stopChecker = new AbortController();
  beforeAll(async () => {
    // Replicas share the signing key, as in production.
    const sharedKey = { JWT_PRIVATE_KEY: generateEs256Pem() };
    replicaA = await startTestServer(sharedKey);
    replicaB = await startTestServer(sharedKey);
  });
  afterAll(async () => {
    stopChecker.abort();
    await replicaA?.close();
    await replicaB?.close();
  });

  it("refuses on replica B, and in an interceptor watching B, within 1 s of a logout on A", async () => {
    const { tokens } = await signUpAndLogin(replicaA);
    await replicaB.grpc.verify({ accessToken: tokens.accessToken });
    const checker = createTokenChecker({
      transport: createGrpcTransport({ baseUrl: `http://${replicaB.grpcAddress}` }),
      signal: stopChecker.signal,
    });
    await checker.ready();
    const authorization = `Bearer ${tokens.accessToken}`;
    await checker.check(authorization);

    await replicaA.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
    await vi.waitFor(
      async () => {
        const error = await grpcFailure(replicaB.grpc.verify({ accessToken: tokens.accessToken }));
        expect(error.reason).toBe("SESSION_REVOKED");
      },
      { timeout: 1_000, interval: 10 },
    );
    await vi.waitFor(
      async () => {
        await expect(checker.check(authorization)).rejects.toMatchObject({
          reason: "SESSION_REVOKED",
        });
      },
      { timeout: 1_000, interval: 10 },
    );
  });

  it("refuses on replica B after reuse detection on A", async () => {
    const { tokens } = await signUpAndLogin(replicaA);
    await replicaA.grpc.refresh({ refreshToken: tokens.refreshToken });
    await grpcFailure(replicaA.grpc.refresh({ refreshToken: tokens.refreshToken }));
    await vi.waitFor(
      async () => {
        const error = await grpcFailure(replicaB.grpc.verify({ accessToken: tokens.accessToken }));
        expect(error.reason).toBe("SESSION_REVOKED");
      },
      { timeout: 1_000, interval: 10 },
    );
  });

  it("listens again after its LISTEN connection is killed, and catches up", async () => {
    const { tokens } = await signUpAndLogin(replicaA);
    await sql`select pg_terminate_backend(pid) from pg_stat_activity
      where query like 'LISTEN %' and pid <> pg_backend_pid() and datname = current_database()`.execute(
      replicaA.app.db,
    );
    await replicaA.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
    await expect
      .poll(
        async () =>
          (await grpcFailure(replicaB.grpc.verify({ accessToken: tokens.accessToken }))).reason,
        { timeout: 10_000 },
      )
      .toBe("SESSION_REVOKED");
    // Listening again: the next revocation arrives by notification.
    const next = await signUpAndLogin(replicaA);
    await replicaA.grpc.logout({ refreshToken: next.tokens.refreshToken, allSessions: false });
    await vi.waitFor(
      async () => {
        const error = await grpcFailure(
          replicaB.grpc.verify({ accessToken: next.tokens.accessToken }),
        );
        expect(error.reason).toBe("SESSION_REVOKED");
      },
      { timeout: 1_000, interval: 10 },
    );
  });
});

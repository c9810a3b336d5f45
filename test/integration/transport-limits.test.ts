import http from "node:http";
import http2 from "node:http2";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import { DEFAULT_TRANSPORT_LIMITS } from "../../src/server.js";
import { connectFailure, grpcFailure, startTestServer, type TestServer } from "./harness.js";

/** The SETTINGS a server sends on a new HTTP/2 connection. */
function serverSettings(port: number): Promise<http2.Settings> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.once("error", reject);
    session.once("remoteSettings", (settings) => {
      session.close();
      resolve(settings);
    });
  });
}

/** Resolves when the server closes an HTTP/2 connection on which nothing happens. */
function closedWhenIdle(port: number): Promise<void> {
  return new Promise((resolve) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", () => {});
    session.once("goaway", () => resolve());
    session.once("close", () => resolve());
  });
}

describe("transport limits", () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer({}, { transportLimits: { idleTimeoutMs: 300 } });
  });
  afterAll(() => server?.close());

  it("allows 100 concurrent streams per connection on both ports", async () => {
    for (const port of [server.app.port, server.app.httpPort]) {
      const settings = await serverSettings(port);
      expect(settings.maxConcurrentStreams).toBe(DEFAULT_TRANSPORT_LIMITS.maxConcurrentStreams);
    }
    expect((await serverSettings(server.app.httpPort)).maxHeaderListSize).toBe(16 * 1024);
  });

  it("closes idle HTTP/2 connections on both ports", async () => {
    await Promise.all([closedWhenIdle(server.app.port), closedWhenIdle(server.app.httpPort)]);
  });

  it("pings quiet HTTP/2 connections on both ports (keepalive)", async () => {
    const pinging = await startTestServer({}, { transportLimits: { keepaliveTimeMs: 100 } });
    try {
      const pinged = (port: number) =>
        new Promise<void>((resolve) => {
          const session = http2.connect(`http://127.0.0.1:${port}`);
          session.on("error", () => {});
          session.once("ping", () => {
            session.close();
            resolve();
          });
        });
      await Promise.all([pinged(pinging.app.port), pinged(pinging.app.httpPort)]);
    } finally {
      await pinging.close();
    }
  });

  it("refuses headers over 16 KiB on the HTTP port, and serves on", async () => {
    const big = "x".repeat(20 * 1024);
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const request = http.request(
        {
          host: "127.0.0.1",
          port: server.app.httpPort,
          method: "POST",
          path: "/auth.v1.AuthService/GetJwks",
          headers: { "content-type": "application/json", "x-padding": big },
        },
        (response) => {
          response.resume();
          resolve(response.statusCode);
        },
      );
      request.once("error", reject);
      request.end("{}");
    });
    expect(status).toBe(431);
    const h2c = createClient(
      AuthService,
      createGrpcTransport({ baseUrl: `http://127.0.0.1:${server.app.httpPort}` }),
    );
    const failure = await connectFailure(h2c.getJwks({}, { headers: { "x-padding": big } })).catch(
      (error: unknown) => error,
    );
    expect(failure).toBeTruthy();
    await expect(server.connect.getJwks({})).resolves.toBeTruthy();
  });

  it("refuses metadata over 16 KiB on the gRPC port with RESOURCE_EXHAUSTED, and serves on", async () => {
    const failure = await grpcFailure(
      server.grpc.getJwks({}, { "x-padding": "x".repeat(17 * 1024) }),
    );
    expect(failure.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await expect(
      server.grpc.getJwks({}, { "x-padding": "x".repeat(15 * 1024) }),
    ).resolves.toBeTruthy();
  });
});

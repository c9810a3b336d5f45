import type http from "node:http";
import type { AddressInfo } from "node:net";
import { type Client, Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GreetService } from "../../gen/greet/v1/greet_pb.js";
import {
  createBearerInterceptor,
  createTokenChecker,
  createTokenRefresher,
} from "../../src/interceptors/index.js";
import {
  connectFailure,
  signUpAndLogin,
  startTestServer,
  type TestServer,
} from "../../test/integration/harness.js";
import { createConnectGreeter } from "./server.js";

let auth: TestServer;
let greeter: http.Server;
let baseUrl: string;
const stop = new AbortController();

beforeAll(async () => {
  auth = await startTestServer();
  const checker = createTokenChecker({
    transport: createGrpcTransport({ baseUrl: `http://${auth.grpcAddress}` }),
    clock: () => auth.clock.now,
    signal: stop.signal,
  });
  await checker.ready();
  greeter = createConnectGreeter({ authServiceUrl: `http://${auth.grpcAddress}`, checker });
  await new Promise<void>((resolve) => greeter.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(greeter.address() as AddressInfo).port}`;
});

afterAll(async () => {
  stop.abort();
  greeter?.closeAllConnections();
  await new Promise((resolve) => greeter?.close(resolve));
  await auth?.close();
});

function greeterWithToken(token?: string): Client<typeof GreetService> {
  return createClient(
    GreetService,
    createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      interceptors: token
        ? [
            (next) => (request) => {
              request.header.set("authorization", `Bearer ${token}`);
              return next(request);
            },
          ]
        : [],
    }),
  );
}

describe("the example Connect service", () => {
  it("greets a caller whose token the refresher attaches", async () => {
    const { user, tokens } = await signUpAndLogin(auth);
    const refresher = createTokenRefresher({
      transport: createGrpcTransport({ baseUrl: `http://${auth.grpcAddress}` }),
      tokens,
      clock: () => auth.clock.now,
    });
    const client = createClient(
      GreetService,
      createConnectTransport({
        baseUrl,
        httpVersion: "1.1",
        interceptors: [createBearerInterceptor(refresher)],
      }),
    );
    expect(await client.greet({})).toMatchObject({
      greeting: `Hello, ${user.username}`,
      userId: user.id,
    });
  });

  it("refuses a missing, malformed or tampered token with TOKEN_INVALID", async () => {
    const { tokens } = await signUpAndLogin(auth);
    const tampered = `${tokens.accessToken.slice(0, -4)}AAAA`;
    for (const token of [undefined, "not-a-token", tampered]) {
      const error = await connectFailure(greeterWithToken(token).greet({}));
      expect(error).toMatchObject({ code: Code.Unauthenticated, reason: "TOKEN_INVALID" });
    }
  });

  it("refuses the token of a logged-out session with SESSION_REVOKED", async () => {
    const { tokens } = await signUpAndLogin(auth);
    const client = greeterWithToken(tokens.accessToken);
    await client.greet({});
    await auth.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
    await expect
      .poll(async () => (await connectFailure(client.greet({}))).reason)
      .toBe("SESSION_REVOKED");
  });

  it("answers a public method without a token", async () => {
    await greeterWithToken().ping({});
  });
});

import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { GreetResponse } from "../../gen/greet/v1/greet_pb.js";
import {
  createGrpcBearerInterceptor,
  createTokenChecker,
  createTokenRefresher,
} from "../../src/interceptors/index.js";
import {
  grpcFailure,
  signUpAndLogin,
  startTestServer,
  type TestServer,
} from "../../test/integration/harness.js";
import { createGrpcGreeter, greetServiceDefinition } from "./server.js";

const GreetClient = grpc.makeGenericClientConstructor(greetServiceDefinition, "GreetService");

let auth: TestServer;
let greeter: grpc.Server;
let address: string;
const stop = new AbortController();
const clients: grpc.Client[] = [];

beforeAll(async () => {
  auth = await startTestServer();
  const checker = createTokenChecker({
    transport: createGrpcTransport({ baseUrl: `http://${auth.grpcAddress}` }),
    clock: () => auth.clock.now,
    signal: stop.signal,
  });
  await checker.ready();
  greeter = createGrpcGreeter({ authServiceUrl: `http://${auth.grpcAddress}`, checker });
  const port = await new Promise<number>((resolve, reject) =>
    greeter.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(async () => {
  stop.abort();
  for (const client of clients) {
    client.close();
  }
  greeter?.forceShutdown();
  await auth?.close();
});

type Call = (
  request: object,
  metadata: grpc.Metadata,
  callback: (error: grpc.ServiceError | null, response: GreetResponse) => void,
) => void;

function client(interceptors: grpc.Interceptor[] = []) {
  const raw = new GreetClient(address, grpc.credentials.createInsecure(), { interceptors });
  clients.push(raw);
  const call = (name: "greet" | "ping", token?: string) =>
    new Promise<GreetResponse>((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (token !== undefined) {
        metadata.set("authorization", `Bearer ${token}`);
      }
      (raw as unknown as Record<string, Call>)[name]?.call(raw, {}, metadata, (error, response) =>
        error ? reject(error) : resolve(response),
      );
    });
  return {
    greet: (token?: string) => call("greet", token),
    ping: () => call("ping"),
  };
}

describe("the example grpc-js service", () => {
  it("greets a caller whose token the grpc-js client interceptor attaches", async () => {
    const { user, tokens } = await signUpAndLogin(auth);
    const refresher = createTokenRefresher({
      transport: createGrpcTransport({ baseUrl: `http://${auth.grpcAddress}` }),
      tokens,
      clock: () => auth.clock.now,
    });
    const response = await client([createGrpcBearerInterceptor(refresher)]).greet();
    expect(response).toMatchObject({ greeting: `Hello, ${user.username}`, userId: user.id });
  });

  it("refuses a missing, malformed or tampered token with TOKEN_INVALID", async () => {
    const { tokens } = await signUpAndLogin(auth);
    const tampered = `${tokens.accessToken.slice(0, -4)}AAAA`;
    const plain = client();
    for (const token of [undefined, "not-a-token", tampered]) {
      const error = await grpcFailure(plain.greet(token));
      expect(error).toMatchObject({
        code: grpc.status.UNAUTHENTICATED,
        reason: "TOKEN_INVALID",
        domain: "auth.v1",
      });
    }
  });

  it("refuses an expired token with TOKEN_EXPIRED", async () => {
    const { tokens } = await signUpAndLogin(auth);
    const plain = client();
    await plain.greet(tokens.accessToken);
    auth.clock.advance(16 * 60_000);
    const error = await grpcFailure(plain.greet(tokens.accessToken));
    expect(error.reason).toBe("TOKEN_EXPIRED");
  });

  it("refuses the token of a logged-out session with SESSION_REVOKED", async () => {
    const { tokens } = await signUpAndLogin(auth);
    const plain = client();
    await plain.greet(tokens.accessToken);
    await auth.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
    await expect
      .poll(async () => (await grpcFailure(plain.greet(tokens.accessToken))).reason)
      .toBe("SESSION_REVOKED");
  });

  it("answers a public method without a token", async () => {
    await client().ping();
  });
});

import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService, LoginRequestSchema } from "../../gen/auth/v1/auth_pb.js";
import { grpcClientDefinition } from "../../src/rpc/grpc-adapter.js";
import {
  capturingLogger,
  grpcErrorFacts,
  newUser,
  startTestServer,
  type TestServer,
} from "./harness.js";

type LoginCall = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null) => void,
) => void;

describe("the password hash queue", () => {
  let server: TestServer;
  let client: grpc.Client & { login: LoginCall };
  const logs = capturingLogger();

  beforeAll(async () => {
    // One hash at a time, one waiting, and hashes slow enough to queue behind.
    server = await startTestServer(
      {
        HASH_CONCURRENCY: "1",
        HASH_QUEUE_MAX: "1",
        ARGON2_TIME_COST: "100",
        ARGON2_MEMORY_KIB: "16384",
      },
      { logger: logs.logger },
    );
    const Client = grpc.makeGenericClientConstructor(grpcClientDefinition(AuthService), "Auth");
    client = new Client(server.grpcAddress, grpc.credentials.createInsecure()) as never;
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  function login(input: ReturnType<typeof newUser>, deadlineMs: number) {
    return new Promise<grpc.ServiceError | null>((resolve) =>
      client.login(
        create(LoginRequestSchema, { identifier: input.username, password: input.password }),
        new grpc.Metadata(),
        { deadline: Date.now() + deadlineMs },
        (error) => resolve(error),
      ),
    );
  }

  it("refuses beyond the queue at once, and never hashes a call whose deadline passed in it", async () => {
    const input = newUser();
    await server.grpc.signUp(input);
    const running = login(input, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // Waits behind the running hash until its deadline passes: DEADLINE_EXCEEDED, and it leaves the queue.
    const expired = await login(input, 150);
    expect(expired?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const queued = login(input, 30_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = await login(input, 30_000);
    expect(grpcErrorFacts(refused)).toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
      reason: "RATE_LIMITED",
      retryDelayMs: 1000,
    });
    expect(await running).toBeNull();
    expect(await queued).toBeNull();
    // Two logins were hashed and succeeded; the expired one never reached the hasher.
    const logins = logs.entries().filter((entry) => entry.event === "login_succeeded");
    expect(logins).toHaveLength(2);
    expect(logs.entries().filter((entry) => entry.event === "login_failed")).toHaveLength(0);
  });
});

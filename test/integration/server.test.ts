import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fromBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import {
  connectFailure,
  grpcErrorFacts,
  grpcFailure,
  newUser,
  startTestServer,
  type TestServer,
} from "./harness.js";

const run = promisify(execFile);
const BUF = new URL("../../node_modules/.bin/buf", import.meta.url).pathname;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer({}, { healthCheckIntervalMs: 50 });
});
afterAll(async () => {
  await server?.close();
});

type HealthClient = grpc.Client & {
  check(
    request: { service: string },
    callback: (error: grpc.ServiceError | null, response: { status: string }) => void,
  ): void;
  watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }>;
};

function healthClient(address: string): HealthClient {
  const Constructor = grpc.makeGenericClientConstructor(healthService, "Health");
  return new Constructor(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

function check(client: HealthClient, service: string): Promise<string> {
  return new Promise((resolve, reject) =>
    client.check({ service }, (error, response) =>
      error ? reject(error) : resolve(response.status),
    ),
  );
}

/** A unary call with raw bytes in and out, to send what no generated client would. */
function rawCall(address: string, path: string, body: Buffer): Promise<Buffer> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const identity = (bytes: Buffer) => bytes;
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(path, identity, identity, body, (error, response) => {
      client.close();
      error ? reject(error) : resolve(response as Buffer);
    });
  });
}

describe("gRPC port", () => {
  it("answers health checks for the server and for AuthService alike", async () => {
    const client = healthClient(server.grpcAddress);
    try {
      expect(await check(client, "")).toBe("SERVING");
      expect(await check(client, "auth.v1.AuthService")).toBe("SERVING");
      await expect(check(client, "no.such.Service")).rejects.toMatchObject({
        code: grpc.status.NOT_FOUND,
      });
    } finally {
      client.close();
    }
  });

  it("lists its services through reflection v1 and v1alpha, as buf curl sees them", async () => {
    for (const protocol of ["grpc-v1", "grpc-v1alpha"]) {
      const { stdout } = await run(BUF, [
        "curl",
        "--list-services",
        "--protocol=grpc",
        "--http2-prior-knowledge",
        `--reflect-protocol=${protocol}`,
        `http://${server.grpcAddress}`,
      ]);
      expect(stdout.split("\n").filter(Boolean).sort()).toEqual([
        "auth.v1.AuthService",
        "envoy.service.auth.v3.Authorization",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
      ]);
    }
  });

  it("describes Health through reflection, so buf curl can check it", async () => {
    const { stdout } = await run(BUF, [
      "curl",
      "--protocol=grpc",
      "--http2-prior-knowledge",
      "-d",
      '{"service":"auth.v1.AuthService"}',
      `http://${server.grpcAddress}/grpc.health.v1.Health/Check`,
    ]);
    expect(JSON.parse(stdout)).toEqual({ status: "SERVING" });
  });

  it("serves buf curl with no proto file at hand, errors included", async () => {
    const user = newUser();
    const signUp = await run(BUF, [
      "curl",
      "--protocol=grpc",
      "--http2-prior-knowledge",
      "-d",
      JSON.stringify({ username: user.username, email: user.email, password: user.password }),
      `http://${server.grpcAddress}/auth.v1.AuthService/SignUp`,
    ]);
    expect(JSON.parse(signUp.stdout).user.username).toBe(user.username);
    const failed = await run(BUF, [
      "curl",
      "--protocol=grpc",
      "--http2-prior-knowledge",
      "-d",
      JSON.stringify({ identifier: user.username, password: "wrong password" }),
      `http://${server.grpcAddress}/auth.v1.AuthService/Login`,
    ]).catch((error: { stdout: string; stderr: string }) => error);
    // buf curl prints the error status as JSON on stderr.
    const answer = JSON.parse((failed as { stderr: string }).stderr) as {
      code: string;
      details: Array<{ type: string; value: string }>;
    };
    expect(answer.code).toBe("unauthenticated");
    const [detail] = answer.details;
    expect(detail?.type).toBe("google.rpc.ErrorInfo");
    const info = fromBinary(ErrorInfoSchema, Buffer.from(detail?.value ?? "", "base64"));
    expect(info).toMatchObject({ reason: "INVALID_CREDENTIALS", domain: "auth.v1" });
  });

  it("refuses a request message over 1 MiB with RESOURCE_EXHAUSTED and goes on serving", async () => {
    const huge = newUser({ firstName: "x".repeat(1024 * 1024 + 10) });
    const error = await grpcFailure(server.grpc.signUp(huge));
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    const overConnect = await connectFailure(server.connect.signUp(huge));
    expect(overConnect.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    await server.grpc.signUp(newUser());
  });

  it("answers INVALID_ARGUMENT, not INTERNAL, for bytes that are not a protobuf message", async () => {
    const error = await rawCall(
      server.grpcAddress,
      "/auth.v1.AuthService/Login",
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
    ).catch(grpcErrorFacts);
    expect(error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
  });

  it("answers UNIMPLEMENTED for a method it does not have", async () => {
    const error = await rawCall(
      server.grpcAddress,
      "/auth.v1.AuthService/Nope",
      Buffer.alloc(0),
    ).catch(grpcErrorFacts);
    expect(error).toMatchObject({ code: grpc.status.UNIMPLEMENTED });
  });

  it("turns NOT_SERVING, streamed to Watch, when the database stops answering", async () => {
    const ailing = await startTestServer({}, { healthCheckIntervalMs: 50 });
    const client = healthClient(ailing.grpcAddress);
    const seen: string[] = [];
    const stream = client.watch({ service: "auth.v1.AuthService" });
    const notServing = new Promise<void>((resolve) =>
      stream.on("data", ({ status }: { status: string }) => {
        seen.push(status);
        if (status === "NOT_SERVING") {
          resolve();
        }
      }),
    );
    stream.on("error", () => {});
    try {
      await expect.poll(() => seen).toContain("SERVING");
      await ailing.app.db.destroy();
      await notServing;
      expect(seen).toEqual(["SERVING", "NOT_SERVING"]);
      expect(await check(client, "")).toBe("NOT_SERVING");
    } finally {
      stream.cancel();
      client.close();
      await ailing.close();
    }
  });
});

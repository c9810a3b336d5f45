import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcFrame, grpcMessage } from "../../bench/grpc-frames.js";
import { RawGrpcConnection } from "../../bench/raw-grpc-client.js";
import {
  GetJwksRequestSchema,
  GetJwksResponseSchema,
  VerifyRequestSchema,
} from "../../gen/auth/v1/auth_pb.js";
import { startTestServer, type TestServer } from "./harness.js";

// The benchmark's load generator writes HTTP/2 frames itself: its req/s mean something only
// if the server accepts those frames and the client tells answers from errors.
let server: TestServer;
let connection: RawGrpcConnection;
beforeAll(async () => {
  server = await startTestServer();
  connection = await RawGrpcConnection.connect(server.app.port);
});
afterAll(async () => {
  connection?.close();
  await server?.close();
});

const getJwks = grpcFrame(toBinary(GetJwksRequestSchema, create(GetJwksRequestSchema)));

describe("the benchmark's raw HTTP/2 gRPC client", () => {
  it("gets the real answer of a call", async () => {
    const { ok, body } = await connection.call("/auth.v1.AuthService/GetJwks", getJwks);
    expect(ok).toBe(true);
    const { jwksJson } = fromBinary(GetJwksResponseSchema, grpcMessage(body));
    expect(JSON.parse(jwksJson).keys).toHaveLength(1);
  });

  it("reports an error status as a failed call", async () => {
    const forged = grpcFrame(
      toBinary(VerifyRequestSchema, create(VerifyRequestSchema, { accessToken: "a.b.c" })),
    );
    expect(await connection.call("/auth.v1.AuthService/Verify", forged)).toMatchObject({
      ok: false,
    });
    expect(await connection.call("/auth.v1.AuthService/NoSuchMethod", getJwks)).toMatchObject({
      ok: false,
    });
  });

  it("carries more than the first flow-control windows, within the server's stream limit", async () => {
    // 1,000 requests of ~1 KiB (an unknown field the server skips) and their answers are
    // more than HTTP/2's initial 64 KiB window each way; 50 at a time on one connection.
    const padded = grpcFrame(Buffer.from([0x7a, 0xe8, 0x07, ...Buffer.alloc(1000, 0x61)]));
    let okCount = 0;
    const worker = async () => {
      for (let call = 0; call < 20; call++) {
        const { ok } = await connection.call("/auth.v1.AuthService/GetJwks", padded);
        okCount += ok ? 1 : 0;
      }
    };
    await Promise.all(Array.from({ length: 50 }, worker));
    expect(okCount).toBe(1_000);
  });
});

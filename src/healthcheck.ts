#!/usr/bin/env node
// The container's HEALTHCHECK: asks the gRPC health service on this host's PORT and exits
// 0 for SERVING, 1 for anything else (NOT_SERVING, no answer within the deadline, refused).
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  Health,
  HealthCheckRequestSchema,
  type HealthCheckResponse,
  HealthCheckResponse_ServingStatus,
} from "../gen/grpc/health/v1/health_pb.js";
import { loadConfigWithFile } from "./config.js";
import { grpcClientDefinition } from "./rpc/grpc-adapter.js";

const DEADLINE_MS = 3_000;

type HealthClient = grpc.Client & {
  check(
    request: unknown,
    options: grpc.CallOptions,
    callback: (error: grpc.ServiceError | null, response?: HealthCheckResponse) => void,
  ): void;
};

/** Resolves with the serving status of the whole server (service ""), or an error text. */
function checkHealth(address: string, deadlineMs: number): Promise<string> {
  const Client = grpc.makeGenericClientConstructor(grpcClientDefinition(Health), "Health");
  const client: HealthClient = new Client(address, grpc.credentials.createInsecure()) as never;
  return new Promise((resolve) => {
    client.check(
      create(HealthCheckRequestSchema, { service: "" }),
      { deadline: Date.now() + deadlineMs },
      (error, response) => {
        client.close();
        resolve(
          error
            ? `error: ${error.details || error.message}`
            : (HealthCheckResponse_ServingStatus[response?.status ?? 0] ?? "UNKNOWN"),
        );
      },
    );
  });
}

const { port } = loadConfigWithFile(process.env);
const status = await checkHealth(`127.0.0.1:${port}`, DEADLINE_MS);
console.log(status);
process.exit(status === "SERVING" ? 0 : 1);

import { randomUUID } from "node:crypto";
import { create, fromBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "../../gen/google/rpc/status_pb.js";
import { type App, type AppOptions, startApp } from "../../src/app.js";
import { type Config, loadConfig } from "../../src/config.js";
import { grpcClientDefinition } from "../../src/rpc/grpc-adapter.js";

type Methods = typeof AuthService.method;

/** AuthService over grpc-js with promises; metadata as a plain object. */
export type GrpcAuthClient = {
  [K in keyof Methods]: (
    request: MessageInitShape<Methods[K]["input"]>,
    metadata?: Record<string, string>,
  ) => Promise<MessageShape<Methods[K]["output"]>>;
};

export interface TestServer {
  app: App;
  config: Config;
  grpc: GrpcAuthClient;
  /** Connect protocol over HTTP/1.1 with JSON, as curl or a browser would. */
  connect: Client<typeof AuthService>;
  /** gRPC-Web over HTTP/1.1. */
  grpcWeb: Client<typeof AuthService>;
  grpcAddress: string;
  /** The server's clock; tests move it instead of sleeping. */
  clock: { now: number; advance(ms: number): void };
  close(): Promise<void>;
}

type RawUnaryCall = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response: unknown) => void,
) => void;

/** A grpc-js client for AuthService with its methods by local name (`signUp`, …). */
function grpcRawClient(address: string): grpc.Client & Record<string, RawUnaryCall> {
  const Constructor = grpc.makeGenericClientConstructor(
    grpcClientDefinition(AuthService),
    "AuthService",
  );
  return new Constructor(address, grpc.credentials.createInsecure()) as never;
}

/** A promise-returning grpc-js AuthService client; close it when done. */
export function connectGrpc(address: string): { client: GrpcAuthClient; close(): void } {
  const raw = grpcRawClient(address);
  return { client: promisedGrpcClient(raw), close: () => raw.close() };
}

function promisedGrpcClient(raw: grpc.Client & Record<string, RawUnaryCall>): GrpcAuthClient {
  const client: Record<string, unknown> = {};
  for (const method of AuthService.methods) {
    client[method.localName] = (request: object, metadata: Record<string, string> = {}) =>
      new Promise((resolve, reject) => {
        const md = new grpc.Metadata();
        for (const [key, value] of Object.entries(metadata)) {
          md.set(key, value);
        }
        raw[method.localName]?.call(
          raw,
          create(method.input, request as never),
          md,
          { deadline: Date.now() + 20_000 },
          (error, response) => (error ? reject(error) : resolve(response)),
        );
      });
  }
  return client as GrpcAuthClient;
}

/** Settings for a test server: random ports, loopback, cheap argon2, silent logs. */
export function testConfig(environment: Record<string, string> = {}): Config {
  return {
    ...loadConfig({
      HOST: "127.0.0.1",
      PORT: "0",
      HTTP_PORT: "0",
      ADMIN_PORT: "0",
      ARGON2_MEMORY_KIB: "1024",
      ARGON2_TIME_COST: "1",
      LOG_LEVEL: "silent",
      ...(process.env.TEST_DATABASE_URL ? { DATABASE_URL: process.env.TEST_DATABASE_URL } : {}),
      ...environment,
    }),
    // In memory unless a test gives a DATA_DIR.
    dataDir: environment.DATA_DIR,
  };
}

/**
 * Starts the real server on random loopback ports, on an in-memory PGlite or, when
 * TEST_DATABASE_URL is set, on that PostgreSQL database.
 */
export async function startTestServer(
  environment: Record<string, string> = {},
  options: Partial<Pick<AppOptions, "healthCheckIntervalMs" | "logger">> = {},
): Promise<TestServer> {
  const config = testConfig(environment);
  const clock = {
    now: Date.now(),
    advance(ms: number) {
      clock.now += ms;
    },
  };
  const app = await startApp({
    config,
    clock: () => clock.now,
    logger: pino({ level: "silent" }),
    ...options,
  });
  const grpcAddress = `127.0.0.1:${app.port}`;
  const grpcClient = connectGrpc(grpcAddress);
  const baseUrl = `http://127.0.0.1:${app.httpPort}`;
  return {
    app,
    config,
    grpc: grpcClient.client,
    connect: createClient(AuthService, createConnectTransport({ baseUrl, httpVersion: "1.1" })),
    grpcWeb: createClient(AuthService, createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })),
    grpcAddress,
    clock,
    async close() {
      grpcClient.close();
      await app.close();
    },
  };
}

/** A name no other test uses, so tests can share one PostgreSQL database. */
export function uniqueName(prefix = "user"): string {
  return `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

export function newUser(
  overrides: Partial<
    Record<"username" | "email" | "password" | "phoneNumber" | "firstName" | "lastName", string>
  > = {},
) {
  const username = overrides.username ?? uniqueName();
  return {
    username,
    email: overrides.email ?? `${username}@example.com`,
    password: overrides.password ?? "correct horse battery staple",
    phoneNumber: overrides.phoneNumber ?? "",
    firstName: overrides.firstName ?? "",
    lastName: overrides.lastName ?? "",
  };
}

/** A random E.164 number with 12 digits. */
export function uniquePhoneNumber(): string {
  return `+1${String(Math.floor(Math.random() * 1e11)).padStart(11, "0")}`;
}

export interface ErrorFacts {
  code: number;
  reason: string | undefined;
  domain: string | undefined;
  metadata: Record<string, string>;
  badFields: string[];
  message: string;
}

/** Code, ErrorInfo and BadRequest of a grpc-js error, decoded from grpc-status-details-bin. */
export function grpcErrorFacts(error: unknown): ErrorFacts {
  const serviceError = error as grpc.ServiceError;
  if (typeof serviceError?.code !== "number" || !serviceError.metadata) {
    throw error;
  }
  const [bytes] = serviceError.metadata.get("grpc-status-details-bin");
  const status = bytes instanceof Buffer ? fromBinary(StatusSchema, bytes) : undefined;
  const info = status?.details.map((any) => anyUnpack(any, ErrorInfoSchema)).find((x) => x);
  const badRequest = status?.details.map((any) => anyUnpack(any, BadRequestSchema)).find((x) => x);
  return {
    code: serviceError.code,
    reason: info?.reason,
    domain: info?.domain,
    metadata: info?.metadata ?? {},
    badFields: badRequest?.fieldViolations.map((violation) => violation.field) ?? [],
    message: serviceError.details,
  };
}

/** The same facts from a Connect client's error. */
export function connectErrorFacts(error: unknown): ErrorFacts {
  if (!(error instanceof ConnectError)) {
    throw error;
  }
  const [info] = error.findDetails(ErrorInfoSchema);
  const [badRequest] = error.findDetails(BadRequestSchema);
  return {
    code: error.code,
    reason: info?.reason,
    domain: info?.domain,
    metadata: info?.metadata ?? {},
    badFields: badRequest?.fieldViolations.map((violation) => violation.field) ?? [],
    message: error.rawMessage,
  };
}

/** Runs a call that must fail and returns what the grpc-js error says. */
export async function grpcFailure(call: Promise<unknown>): Promise<ErrorFacts> {
  try {
    await call;
  } catch (error) {
    return grpcErrorFacts(error);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

export async function connectFailure(call: Promise<unknown>): Promise<ErrorFacts> {
  try {
    await call;
  } catch (error) {
    return connectErrorFacts(error);
  }
  throw new Error("expected the call to fail, but it succeeded");
}

/** Signs a new user up and logs in; returns the tokens. */
export async function signUpAndLogin(
  server: TestServer,
  overrides: Parameters<typeof newUser>[0] = {},
) {
  const user = newUser(overrides);
  const signUp = await server.grpc.signUp(user);
  const login = await server.grpc.login({ identifier: user.username, password: user.password });
  if (!signUp.user || !login.tokens) {
    throw new Error("sign-up or login returned no user or tokens");
  }
  return { input: user, user: signUp.user, tokens: login.tokens };
}

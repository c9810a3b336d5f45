import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { create, fromBinary, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { anyUnpack, durationMs } from "@bufbuild/protobuf/wkt";
import { type Client, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { type Logger, pino } from "pino";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  type RetryInfo,
  RetryInfoSchema,
} from "../../gen/google/rpc/error_details_pb.js";
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
function grpcRawClient(
  address: string,
  channelOptions: grpc.ChannelOptions = {},
): grpc.Client & Record<string, RawUnaryCall> {
  const Constructor = grpc.makeGenericClientConstructor(
    grpcClientDefinition(AuthService),
    "AuthService",
  );
  return new Constructor(address, grpc.credentials.createInsecure(), channelOptions) as never;
}

/**
 * A promise-returning grpc-js AuthService client; close it when done. Clients share their
 * connection to an address unless `channelOptions` say otherwise.
 */
export function connectGrpc(
  address: string,
  channelOptions: grpc.ChannelOptions = {},
): { client: GrpcAuthClient; close(): void } {
  const raw = grpcRawClient(address, channelOptions);
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
      // Every test signs up and logs in from 127.0.0.1, and test files share one database on
      // PostgreSQL: limits are tested on their own, with addresses of their own.
      RATE_LIMIT_LOGIN_ADDRESS: "1000000/1h",
      RATE_LIMIT_SIGNUP_ADDRESS: "1000000/1h",
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
  options: Partial<Pick<AppOptions, "healthCheckIntervalMs" | "transportLimits" | "logger">> = {},
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
    ...options,
    logger: options.logger ?? pino({ level: "silent" }),
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
  /** google.rpc.RetryInfo's delay, when the error carries one. */
  retryDelayMs: number | undefined;
  message: string;
}

function retryDelayMs(info: RetryInfo | undefined): number | undefined {
  return info?.retryDelay ? durationMs(info.retryDelay) : undefined;
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
  const retryInfo = status?.details.map((any) => anyUnpack(any, RetryInfoSchema)).find((x) => x);
  return {
    code: serviceError.code,
    reason: info?.reason,
    domain: info?.domain,
    metadata: info?.metadata ?? {},
    badFields: badRequest?.fieldViolations.map((violation) => violation.field) ?? [],
    retryDelayMs: retryDelayMs(retryInfo),
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
  const [retryInfo] = error.findDetails(RetryInfoSchema);
  return {
    code: error.code,
    reason: info?.reason,
    domain: info?.domain,
    metadata: info?.metadata ?? {},
    badFields: badRequest?.fieldViolations.map((violation) => violation.field) ?? [],
    retryDelayMs: retryDelayMs(retryInfo),
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

/** A logger that keeps every line it writes, parsed, for tests that read the logs. */
export function capturingLogger(): { logger: Logger; text(): string; entries(): LogEntry[] } {
  let text = "";
  const logger = pino(
    { level: "info" },
    new Writable({
      write(chunk, _encoding, callback) {
        text += chunk;
        callback();
      },
    }),
  );
  return {
    logger,
    text: () => text,
    entries: () =>
      text
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line) as LogEntry),
  };
}

export type LogEntry = Record<string, unknown> & { msg: string };

/**
 * A database of the test's own: on PostgreSQL a fresh database beside TEST_DATABASE_URL's, so a
 * test that counts rows is not disturbed by test files running beside it; on PGlite (no URL)
 * every server has its own in-memory database anyway. `drop` removes it.
 */
export async function isolatedDatabase(): Promise<{
  url: string | undefined;
  drop(): Promise<void>;
}> {
  const base = process.env.TEST_DATABASE_URL;
  if (!base) {
    return { url: undefined, drop: async () => {} };
  }
  const name = uniqueName("auth_test");
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: base });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}

const ROOT = new URL("../..", import.meta.url).pathname;

/**
 * Starts `src/main.ts serve` as a real process on random loopback ports (on TEST_DATABASE_URL's
 * database when set); resolves once it logs that it listens. `onSpawn` gets the child at once,
 * so a caller can kill it even when it never comes up.
 */
export async function spawnService(
  environment: Record<string, string>,
  onSpawn: (child: ChildProcess) => void = () => {},
) {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOST: "127.0.0.1",
      PORT: "0",
      HTTP_PORT: "0",
      ADMIN_PORT: "0",
      ...(process.env.TEST_DATABASE_URL ? { DATABASE_URL: process.env.TEST_DATABASE_URL } : {}),
      ...environment,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  onSpawn(child);
  const lines: string[] = [];
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const address = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stdout?.on("data", (chunk) => {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        const entry = JSON.parse(line) as { msg: string; grpc?: string };
        if (entry.msg === "auth-service listening" && entry.grpc) {
          resolve(entry.grpc);
        }
      }
    });
    exited.then((code) => reject(new Error(`exited with ${code} before listening: ${stderr}`)));
  });
  return { child, address, lines, exited, stderr: () => stderr };
}

import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import {
  grpcErrorFacts,
  isolatedDatabase,
  newUser,
  signUpAndLogin,
  startTestServer,
  type TestServer,
  uniqueName,
} from "./harness.js";

/** Codes DESIGN.md §2 allows an RPC to answer, by gRPC number and by Connect name. */
// WatchRevocations is a stream that stays open: bytes for it are the streaming tests' business.
const unaryMethods = AuthService.methods.filter((method) => method.methodKind === "unary");

const CONTRACT_CODES = new Set([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.ALREADY_EXISTS,
  grpc.status.UNAUTHENTICATED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNAVAILABLE,
]);
const CONTRACT_CONNECT_CODES = new Set([
  "invalid_argument",
  "already_exists",
  "unauthenticated",
  "resource_exhausted",
  "unavailable",
]);
const CONTRACT_REASONS = new Set([
  "INVALID_ARGUMENT",
  "USER_ALREADY_EXISTS",
  "INVALID_CREDENTIALS",
  "RATE_LIMITED",
  "REFRESH_TOKEN_INVALID",
  "REFRESH_TOKEN_EXPIRED",
  "REFRESH_TOKEN_REUSED",
  "TOKEN_INVALID",
  "TOKEN_EXPIRED",
  "SESSION_REVOKED",
  "UNAVAILABLE",
]);

const RUNS = 40;

/** Bytes for a request message: random, or a valid tag and length followed by garbage or too little. */
const malformedMessage = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ maxLength: 32 }).map((tail) => Uint8Array.from([0x0a, 0x7f, ...tail])),
);

/** Text that has broken parsers, databases and normalizers before. */
const nastyFragment = fc.constantFrom(
  "\u0000",
  "\ud800",
  "\udfff",
  "\u202e",
  "\ufeff",
  "\u0007",
  "a\u0301",
  "ａｄｍｉｎ",
  "💩",
  "' OR '1'='1' --",
  "'; DROP TABLE users; --",
  "\\",
  '{"$gt":""}',
  '"}],"x":[{"',
  "%00",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell probe, meant literally
  "${jndi:ldap://127.0.0.1/x}",
  "<script>alert(1)</script>",
  "@",
  "+",
  "..",
  "\r\n",
);
const hostileText = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc
    .array(fc.oneof(nastyFragment, fc.string({ maxLength: 8 })), { maxLength: 8 })
    .map((parts) => parts.join("")),
  fc.constantFrom("a".repeat(100_000), "\ud83d".repeat(50_000), "'".repeat(100_000), ""),
);

/** Rows and their states: what a rejected call must leave exactly as it was. */
async function snapshot(server: TestServer) {
  const { rows } = await sql<Record<string, string>>`
    select
      (select count(*) from users) as users,
      (select string_agg(password_hash, ',' order by id) from users) as hashes,
      (select count(*) from sessions) as sessions,
      (select count(*) from sessions where revoke_time is not null) as revoked,
      (select count(*) from refresh_tokens) as refresh_tokens,
      (select count(*) from refresh_tokens where use_time is not null) as used`.execute(
    server.app.db,
  );
  return rows[0];
}

describe("hostile input", () => {
  let server: TestServer;
  let tokens: { accessToken: string; refreshToken: string };

  let database: Awaited<ReturnType<typeof isolatedDatabase>>;

  beforeAll(async () => {
    database = await isolatedDatabase();
    server = await startTestServer(database.url ? { DATABASE_URL: database.url } : {});
    ({ tokens } = await signUpAndLogin(server));
  });
  afterAll(async () => {
    await server?.close();
    await database?.drop();
  });

  /** Calls over grpc-js; asserts a contract code and, for a rejection, that no row changed. */
  async function callGrpc<I extends DescMessage>(
    method: keyof typeof AuthService.method,
    input: I,
    request: MessageInitShape<I>,
  ): Promise<void> {
    const before = await snapshot(server);
    const call = server.grpc[method] as (request: unknown) => Promise<unknown>;
    try {
      await call(create(input, request));
    } catch (error) {
      const facts = grpcErrorFacts(error);
      expect(CONTRACT_CODES, `${method} answered ${facts.code}`).toContain(facts.code);
      expect(CONTRACT_REASONS).toContain(facts.reason);
      expect(facts.message).not.toMatch(/select|insert|update|\$argon2|at .*\.ts/i);
      expect(await snapshot(server)).toEqual(before);
    }
  }

  it("SignUp", async () => {
    const method = AuthService.method.signUp;
    const allHostile = fc.record({
      username: hostileText,
      email: hostileText,
      password: hostileText,
      phoneNumber: hostileText,
      firstName: hostileText,
      lastName: hostileText,
    });
    // A valid request with one hostile field, so the call gets past the first check.
    const oneHostile = fc
      .tuple(
        fc.constantFrom("username", "email", "password", "phoneNumber", "firstName", "lastName"),
        hostileText,
        fc.stringMatching(/^[a-z]{6,12}$/),
      )
      .map(([field, value, name]) => ({
        ...newUser({ username: `${name}_${uniqueName("h").slice(2, 8)}` }),
        [field]: value,
      }));
    await fc.assert(
      fc.asyncProperty(fc.oneof(allHostile, oneHostile), (request) =>
        callGrpc("signUp", method.input, request),
      ),
      { numRuns: RUNS * 2 },
    );
  });

  it("Login", async () => {
    await fc.assert(
      fc.asyncProperty(hostileText, hostileText, (identifier, password) =>
        callGrpc("login", AuthService.method.login.input, { identifier, password }),
      ),
      { numRuns: RUNS },
    );
  });

  it("Refresh", async () => {
    await fc.assert(
      fc.asyncProperty(hostileText, (refreshToken) =>
        callGrpc("refresh", AuthService.method.refresh.input, { refreshToken }),
      ),
      { numRuns: RUNS },
    );
  });

  it("Verify", async () => {
    const tampered = fc
      .tuple(fc.nat(tokens.accessToken.length - 1), nastyFragment)
      .map(
        ([at, fragment]) =>
          tokens.accessToken.slice(0, at) + fragment + tokens.accessToken.slice(at),
      );
    await fc.assert(
      fc.asyncProperty(fc.oneof(hostileText, tampered), (accessToken) =>
        callGrpc("verify", AuthService.method.verify.input, { accessToken }),
      ),
      { numRuns: RUNS },
    );
  });

  it("Logout", async () => {
    await fc.assert(
      fc.asyncProperty(hostileText, fc.boolean(), (refreshToken, allSessions) =>
        callGrpc("logout", AuthService.method.logout.input, { refreshToken, allSessions }),
      ),
      { numRuns: RUNS },
    );
    // None of it ended the real session.
    await server.grpc.verify({ accessToken: tokens.accessToken });
  });

  it("GetJwks", async () => {
    await fc.assert(
      fc.asyncProperty(fc.constant({}), (request) =>
        callGrpc("getJwks", AuthService.method.getJwks.input, request),
      ),
      { numRuns: 5 },
    );
  });

  it("every RPC, with arbitrary bytes for a request message, over gRPC on both ports", async () => {
    const definition = Object.fromEntries(
      unaryMethods.map((method) => [
        method.localName,
        {
          path: `/${AuthService.typeName}/${method.name}`,
          requestStream: false,
          responseStream: false,
          requestSerialize: (bytes: Uint8Array) => Buffer.from(bytes),
          requestDeserialize: (bytes: Buffer) => bytes,
          responseSerialize: (bytes: Uint8Array) => Buffer.from(bytes),
          responseDeserialize: (bytes: Buffer) => bytes,
        },
      ]),
    );
    const Raw = grpc.makeGenericClientConstructor(definition, "RawAuth");
    type RawClient = Record<
      string,
      (bytes: Uint8Array, callback: (error: grpc.ServiceError | null) => void) => void
    > &
      grpc.Client;
    // gRPC on both ports: grpc-js, and connect-node's gRPC over h2c.
    const clients = [server.grpcAddress, `127.0.0.1:${server.app.httpPort}`].map(
      (address) => new Raw(address, grpc.credentials.createInsecure()) as unknown as RawClient,
    );
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...clients),
          fc.constantFrom(...unaryMethods.map((method) => method.localName)),
          malformedMessage,
          async (raw, method, bytes) => {
            const before = await snapshot(server);
            const error = await new Promise<grpc.ServiceError | null>((resolve) =>
              raw[method]?.call(raw, bytes, resolve),
            );
            if (error) {
              expect(CONTRACT_CODES, `${method} answered ${error.code}`).toContain(error.code);
              expect(await snapshot(server)).toEqual(before);
            }
          },
        ),
        { numRuns: RUNS * 3 },
      );
    } finally {
      for (const raw of clients) {
        raw.close();
      }
    }
  });

  it("every RPC, with arbitrary bytes as binary Connect and gRPC-Web requests", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...unaryMethods.map((method) => method.name)),
        fc.boolean(),
        malformedMessage,
        async (method, grpcWeb, bytes) => {
          const before = await snapshot(server);
          const envelope = Buffer.alloc(5 + bytes.length);
          envelope.writeUInt32BE(bytes.length, 1);
          envelope.set(bytes, 5);
          const response = await fetch(
            `http://127.0.0.1:${server.app.httpPort}/auth.v1.AuthService/${method}`,
            {
              method: "POST",
              headers: {
                "content-type": grpcWeb ? "application/grpc-web+proto" : "application/proto",
              },
              body: grpcWeb ? envelope : bytes,
            },
          );
          const answer = Buffer.from(await response.arrayBuffer());
          let code: string | undefined;
          if (grpcWeb) {
            const status = /grpc-status: ?(\d+)/.exec(answer.toString("latin1"))?.[1];
            code = status === "0" ? undefined : status;
            if (code !== undefined) {
              expect(CONTRACT_CODES, `${method} answered ${code}`).toContain(Number(code));
            }
          } else if (response.status !== 200) {
            code = (JSON.parse(answer.toString("utf8")) as { code: string }).code;
            expect(CONTRACT_CONNECT_CODES, `${method} answered ${code}`).toContain(code);
          }
          if (code !== undefined) {
            expect(await snapshot(server)).toEqual(before);
          }
        },
      ),
      { numRuns: RUNS * 3 },
    );
  });

  describe("over the Connect JSON path, with wrong types", () => {
    const anyJson = fc.oneof(
      fc.integer(),
      fc.double(),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
      hostileText,
    );
    const fields: Record<string, string[]> = {
      SignUp: ["username", "email", "password", "phone_number", "firstName", "last_name"],
      Login: ["identifier", "password"],
      Refresh: ["refresh_token", "refreshToken"],
      Verify: ["access_token"],
      Logout: ["refresh_token", "all_sessions", "allSessions"],
      GetJwks: ["unknown_field"],
    };

    for (const [rpc, names] of Object.entries(fields)) {
      it(rpc, async () => {
        const body = fc.oneof(
          fc.dictionary(fc.constantFrom(...names), anyJson).map((value) => JSON.stringify(value)),
          fc.json(),
          fc.string({ maxLength: 20 }),
          fc.constantFrom("{", '{"username":', "[]", "null", '"x"', "\u0000", "{}".repeat(10_000)),
        );
        await fc.assert(
          fc.asyncProperty(body, async (text) => {
            const before = await snapshot(server);
            const response = await fetch(
              `http://127.0.0.1:${server.app.httpPort}/auth.v1.AuthService/${rpc}`,
              { method: "POST", headers: { "content-type": "application/json" }, body: text },
            );
            const answer = await response.text();
            if (response.status !== 200) {
              const { code } = JSON.parse(answer) as { code: string };
              expect(CONTRACT_CONNECT_CODES, `${rpc} answered ${code}`).toContain(code);
              expect(answer).not.toMatch(/select |insert |\$argon2|\.ts:\d/i);
              expect(await snapshot(server)).toEqual(before);
            }
          }),
          { numRuns: RUNS },
        );
      });
    }
  });
});

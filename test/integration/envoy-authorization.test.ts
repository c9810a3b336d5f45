import { create, type MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HeaderValueOption_HeaderAppendAction } from "../../gen/envoy/config/core/v3/base_pb.js";
import type { AttributeContext_RequestSchema } from "../../gen/envoy/service/auth/v3/attribute_context_pb.js";
import {
  Authorization,
  CheckRequestSchema,
  type CheckResponse,
} from "../../gen/envoy/service/auth/v3/external_auth_pb.js";
import { StatusCode } from "../../gen/envoy/type/v3/http_status_pb.js";
import { grpcClientDefinition } from "../../src/rpc/grpc-adapter.js";
import { signUpAndLogin, startTestServer, type TestServer } from "./harness.js";

let server: TestServer;
let client: grpc.Client;

beforeAll(async () => {
  server = await startTestServer();
  const Constructor = grpc.makeGenericClientConstructor(
    grpcClientDefinition(Authorization),
    "Authorization",
  );
  client = new Constructor(server.grpcAddress, grpc.credentials.createInsecure());
});
afterAll(async () => {
  client?.close();
  await server?.close();
});

type UnaryCall = (
  request: unknown,
  callback: (error: grpc.ServiceError | null, response: CheckResponse) => void,
) => void;

/** A CheckRequest as Envoy's ext_authz HTTP filter sends it: lower-case header names. */
function check(
  headers: Record<string, string>,
  httpRequest?: MessageInitShape<typeof AttributeContext_RequestSchema>,
): Promise<CheckResponse> {
  const request = create(CheckRequestSchema, {
    attributes: {
      source: { principal: "spiffe://cluster.local/ns/default/sa/frontend" },
      request: httpRequest ?? {
        http: {
          id: "req-1",
          method: "GET",
          path: "/orders?page=2",
          host: "orders.internal",
          scheme: "http",
          protocol: "HTTP/1.1",
          size: -1n,
          headers: { ":authority": "orders.internal", "user-agent": "curl/8", ...headers },
        },
      },
      contextExtensions: { route: "orders" },
    },
  });
  const call = (client as unknown as { check: UnaryCall }).check.bind(client);
  return new Promise((resolve, reject) =>
    call(request, (error, response) => (error ? reject(error) : resolve(response))),
  );
}

function expectDenied(response: CheckResponse) {
  expect(response.status?.code).toBe(grpc.status.UNAUTHENTICATED);
  expect(response.httpResponse.case).toBe("deniedResponse");
  const denied = response.httpResponse.value as Extract<
    CheckResponse["httpResponse"],
    { case: "deniedResponse" }
  >["value"];
  expect(denied.status?.code).toBe(StatusCode.Unauthorized);
  const headers = Object.fromEntries(denied.headers.map((h) => [h.header?.key, h.header?.value]));
  expect(headers["www-authenticate"]).toBe('Bearer error="invalid_token"');
  return JSON.parse(denied.body) as { error: string; reason: string };
}

describe("envoy.service.auth.v3.Authorization/Check", () => {
  it("allows a valid token and adds the user's headers, replacing any the client sent", async () => {
    const { user, tokens } = await signUpAndLogin(server);
    const response = await check({
      authorization: `Bearer ${tokens.accessToken}`,
      "x-auth-user-id": "spoofed",
    });
    expect(response.status?.code).toBe(0);
    expect(response.httpResponse.case).toBe("okResponse");
    const ok = response.httpResponse.value as Extract<
      CheckResponse["httpResponse"],
      { case: "okResponse" }
    >["value"];
    const { sessionId } = await server.grpc.verify({ accessToken: tokens.accessToken });
    expect(
      ok.headers.map((option) => [option.header?.key, option.header?.value, option.appendAction]),
    ).toEqual([
      ["x-auth-user-id", user.id, HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD],
      [
        "x-auth-username",
        user.username,
        HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
      ],
      [
        "x-auth-session-id",
        sessionId,
        HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
      ],
    ]);
  });

  it("reads the raw header_map when Envoy sends headers that way", async () => {
    const { tokens } = await signUpAndLogin(server);
    const response = await check(
      {},
      {
        http: {
          method: "GET",
          path: "/",
          headerMap: {
            headers: [
              { key: "Authorization", rawValue: Buffer.from(`Bearer ${tokens.accessToken}`) },
            ],
          },
        },
      },
    );
    expect(response.httpResponse.case).toBe("okResponse");
  });

  it("denies a missing, malformed or non-bearer token with 401 and TOKEN_INVALID", async () => {
    const headerSets: Record<string, string>[] = [
      {},
      { authorization: "Bearer not-a-token" },
      { authorization: "Basic dXNlcjpwdw==" },
    ];
    for (const headers of headerSets) {
      expect(expectDenied(await check(headers))).toEqual({
        error: "invalid_token",
        reason: "TOKEN_INVALID",
      });
    }
  });

  it("denies a revoked session with 401 and SESSION_REVOKED", async () => {
    const { tokens } = await signUpAndLogin(server);
    await server.grpc.logout({ refreshToken: tokens.refreshToken, allSessions: false });
    const body = expectDenied(await check({ authorization: `Bearer ${tokens.accessToken}` }));
    expect(body.reason).toBe("SESSION_REVOKED");
  });

  it("denies an expired token with 401 and TOKEN_EXPIRED", async () => {
    const { tokens } = await signUpAndLogin(server);
    server.clock.advance(16 * 60_000);
    const body = expectDenied(await check({ authorization: `Bearer ${tokens.accessToken}` }));
    expect(body.reason).toBe("TOKEN_EXPIRED");
  });
});

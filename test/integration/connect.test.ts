import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import {
  connectFailure,
  grpcFailure,
  newUser,
  startTestServer,
  type TestServer,
} from "./harness.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

describe("the Connect port", () => {
  it("serves every RPC over the Connect protocol with JSON on HTTP/1.1", async () => {
    const client = server.connect;
    const input = newUser();
    const { user } = await client.signUp(input);
    const login = await client.login({ identifier: input.email, password: input.password });
    expect(login.user?.id).toBe(user?.id);
    const verified = await client.verify(
      {},
      { headers: { authorization: `Bearer ${login.tokens?.accessToken}` } },
    );
    expect(verified.userId).toBe(user?.id);
    const { tokens } = await client.refresh({ refreshToken: login.tokens?.refreshToken ?? "" });
    expect(JSON.parse((await client.getJwks({})).jwksJson).keys).toHaveLength(1);
    await client.logout({ refreshToken: tokens?.refreshToken ?? "" });
    const revoked = await connectFailure(client.verify({ accessToken: tokens?.accessToken ?? "" }));
    expect(revoked).toMatchObject({ code: Code.Unauthenticated, reason: "SESSION_REVOKED" });
  });

  it("serves gRPC-Web, and Connect and gRPC over cleartext HTTP/2", async () => {
    const baseUrl = `http://127.0.0.1:${server.app.httpPort}`;
    const clients = [
      server.grpcWeb,
      createClient(AuthService, createConnectTransport({ baseUrl, httpVersion: "2" })),
      createClient(AuthService, createGrpcTransport({ baseUrl })),
    ];
    for (const client of clients) {
      const input = newUser();
      await client.signUp(input);
      const login = await client.login({ identifier: input.username, password: input.password });
      const verified = await client.verify({ accessToken: login.tokens?.accessToken ?? "" });
      expect(verified.username).toBe(input.username);
    }
  });

  it("maps a domain error to the same code, reason and fields as the gRPC port", async () => {
    const bad = { ...newUser(), email: "nope", password: "123" };
    const overGrpc = await grpcFailure(server.grpc.signUp(bad));
    const overConnect = await connectFailure(server.connect.signUp(bad));
    const overGrpcWeb = await connectFailure(server.grpcWeb.signUp(bad));
    for (const error of [overConnect, overGrpcWeb]) {
      expect(error.code).toBe(overGrpc.code);
      expect(error.reason).toBe("INVALID_ARGUMENT");
      expect(error.badFields.sort()).toEqual(overGrpc.badFields.sort());
      expect(error.message).toBe(overGrpc.message);
    }
    expect(overGrpc.badFields.sort()).toEqual(["email", "password"]);
  });

  it("answers a curl-style JSON POST, and refuses JSON of the wrong shape cleanly", async () => {
    const url = `http://127.0.0.1:${server.app.httpPort}/auth.v1.AuthService/GetJwks`;
    const ok = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(ok.status).toBe(200);
    expect(JSON.parse(((await ok.json()) as { jwksJson: string }).jwksJson).keys).toHaveLength(1);

    const wrongType = await fetch(url.replace("GetJwks", "Login"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ identifier: 42, password: ["x"] }),
    });
    expect(wrongType.status).toBe(400);
    expect(((await wrongType.json()) as { code: string }).code).toBe("invalid_argument");
  });
});

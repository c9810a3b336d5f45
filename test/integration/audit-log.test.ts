import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  capturingLogger,
  grpcFailure,
  newUser,
  startTestServer,
  type TestServer,
} from "./harness.js";

describe("the audit log", () => {
  let server: TestServer;
  const logs = capturingLogger();

  beforeAll(async () => {
    server = await startTestServer(
      { TRUST_PROXY: "true", RATE_LIMIT_LOGIN_IDENTIFIER: "2/15m" },
      { logger: logs.logger },
    );
  });
  afterAll(() => server?.close());

  it("writes one event per security event, with ids, address and reason, and no secret", async () => {
    const address = { "x-forwarded-for": "192.0.2.44" };
    const input = newUser({ password: "audit trail secret 42" });
    const { user } = await server.grpc.signUp(input, address);
    await grpcFailure(
      server.grpc.login({ identifier: input.username, password: "wrong guess 9" }, address),
    );
    const login = await server.grpc.login(
      { identifier: input.username, password: input.password },
      address,
    );
    const first = login.tokens?.refreshToken ?? "";
    const refreshed = await server.grpc.refresh({ refreshToken: first }, address);
    await grpcFailure(server.grpc.refresh({ refreshToken: first }, address));
    const second = await server.grpc.login(
      { identifier: input.username, password: input.password },
      address,
    );
    await server.grpc.logout({ refreshToken: second.tokens?.refreshToken ?? "" }, address);
    await grpcFailure(
      server.grpc.login({ identifier: input.username, password: "wrong 1x" }, address),
    );
    await grpcFailure(
      server.grpc.login({ identifier: input.username, password: "wrong 2x" }, address),
    );
    await grpcFailure(
      server.grpc.login({ identifier: input.username, password: "wrong 3x" }, address),
    );

    const audit = logs.entries().filter((entry) => entry.audit === true);
    expect(audit.map((entry) => [entry.event, entry.reason])).toEqual([
      ["sign_up", undefined],
      ["login_failed", "wrong_password"],
      ["login_succeeded", undefined],
      ["refresh", "rotation"],
      ["refresh_token_reused", undefined],
      ["login_succeeded", undefined],
      ["logout", "session"],
      ["login_failed", "wrong_password"],
      ["login_failed", "wrong_password"],
      ["rate_limited", "login_identifier"],
    ]);
    expect(audit.every((entry) => entry.client_address === "192.0.2.44")).toBe(true);
    expect(
      audit
        .filter((entry) => entry.event !== "rate_limited")
        .every((entry) => entry.user_id === user?.id),
    ).toBe(true);
    const sessionIds = audit.filter((entry) => entry.session_id).map((entry) => entry.session_id);
    expect(sessionIds).toHaveLength(5);

    const { password_hash: passwordHash } = await server.app.db
      .selectFrom("users")
      .select("password_hash")
      .where("id", "=", user?.id ?? "")
      .executeTakeFirstOrThrow();
    const secrets = [
      input.password,
      "wrong guess 9",
      "wrong 3x",
      first,
      refreshed.tokens?.refreshToken,
      refreshed.tokens?.accessToken,
      login.tokens?.accessToken,
      second.tokens?.refreshToken,
      passwordHash,
      passwordHash.split("$").at(-1),
    ];
    const text = logs.text();
    for (const secret of secrets) {
      expect(secret).toBeTruthy();
      expect(text).not.toContain(secret);
    }
  });
});

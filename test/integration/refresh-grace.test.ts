import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcFailure, signUpAndLogin, startTestServer, type TestServer } from "./harness.js";

async function sessionOf(server: TestServer, accessToken: string | undefined): Promise<string> {
  return (await server.grpc.verify({ accessToken: accessToken ?? "" })).sessionId;
}

describe("REFRESH_REUSE_GRACE=0s (default: strict rotation)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server?.close());

  it("treats the rotated token presented again at once as reuse and revokes the session", async () => {
    const { tokens } = await signUpAndLogin(server);
    const next = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    expect(
      (await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }))).reason,
    ).toBe("REFRESH_TOKEN_REUSED");
    const revoked = await grpcFailure(
      server.grpc.refresh({ refreshToken: next.tokens?.refreshToken ?? "" }),
    );
    expect(revoked.reason).toBe("SESSION_REVOKED");
  });
});

describe("REFRESH_REUSE_GRACE=10s", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ REFRESH_REUSE_GRACE: "10s" });
  });
  afterAll(() => server?.close());

  it("lets the parent of the newest token come back twice, each time with a fresh pair", async () => {
    const { tokens } = await signUpAndLogin(server);
    const sessionId = await sessionOf(server, tokens.accessToken);
    const first = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    server.clock.advance(4_000);
    const again = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    const third = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    const pairs = [first, again, third].map((response) => response.tokens);
    expect(new Set(pairs.map((pair) => pair?.refreshToken)).size).toBe(3);
    for (const pair of pairs) {
      expect(await sessionOf(server, pair?.accessToken)).toBe(sessionId);
    }
    // A third return is one too many: reuse, and the session ends.
    const reused = await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }));
    expect(reused.reason).toBe("REFRESH_TOKEN_REUSED");
    const revoked = await grpcFailure(
      server.grpc.refresh({ refreshToken: third.tokens?.refreshToken ?? "" }),
    );
    expect(revoked.reason).toBe("SESSION_REVOKED");
  });

  it("keeps the newest token working after a grace refresh, and only it", async () => {
    const { tokens } = await signUpAndLogin(server);
    const superseded = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    const newest = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    const rotated = await server.grpc.refresh({ refreshToken: newest.tokens?.refreshToken ?? "" });
    expect(rotated.tokens?.refreshToken).toBeTruthy();
    // The pair the grace refresh replaced is an older generation now.
    const old = await grpcFailure(
      server.grpc.refresh({ refreshToken: superseded.tokens?.refreshToken ?? "" }),
    );
    expect(old.reason).toBe("REFRESH_TOKEN_REUSED");
  });

  it("answers reuse for a token presented after the window", async () => {
    const { tokens } = await signUpAndLogin(server);
    const next = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    server.clock.advance(10_000);
    const late = await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }));
    expect(late.reason).toBe("REFRESH_TOKEN_REUSED");
    const revoked = await grpcFailure(
      server.grpc.refresh({ refreshToken: next.tokens?.refreshToken ?? "" }),
    );
    expect(revoked.reason).toBe("SESSION_REVOKED");
  });

  it("answers reuse for an older generation, even within the window", async () => {
    const { tokens } = await signUpAndLogin(server);
    const child = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    await server.grpc.refresh({ refreshToken: child.tokens?.refreshToken ?? "" });
    const grandparent = await grpcFailure(
      server.grpc.refresh({ refreshToken: tokens.refreshToken }),
    );
    expect(grandparent.reason).toBe("REFRESH_TOKEN_REUSED");
  });

  it("lets one of five concurrent refreshes rotate, two more through the grace, then revokes", async () => {
    const { tokens } = await signUpAndLogin(server);
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => server.grpc.refresh({ refreshToken: tokens.refreshToken })),
    );
    expect(results.filter((result) => result.status === "fulfilled")).toHaveLength(3);
    const reasons = await Promise.all(
      results
        .filter((result) => result.status === "rejected")
        .map(async (result) => (await grpcFailure(Promise.reject(result.reason))).reason),
    );
    expect(reasons.sort()).toEqual(["REFRESH_TOKEN_REUSED", "SESSION_REVOKED"]);
  });

  it("serves two clients refreshing one token at once, in one session", async () => {
    const { tokens } = await signUpAndLogin(server);
    const both = await Promise.all([
      server.grpc.refresh({ refreshToken: tokens.refreshToken }),
      server.grpc.refresh({ refreshToken: tokens.refreshToken }),
    ]);
    const sessions = await Promise.all(both.map((r) => sessionOf(server, r.tokens?.accessToken)));
    expect(sessions[0]).toBe(sessions[1]);
  });
});

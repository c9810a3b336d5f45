import { createPublicKey } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import jwt from "jsonwebtoken";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type GrpcAuthClient,
  grpcFailure,
  newUser,
  signUpAndLogin,
  startTestServer,
  type TestServer,
  uniquePhoneNumber,
} from "./harness.js";

const MINUTE = 60_000;
const time = (timestamp: Timestamp | undefined) =>
  timestamp ? timestampDate(timestamp) : new Date(Number.NaN);
const DAY = 24 * 60 * MINUTE;

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

describe("Verify", () => {
  it("accepts a fresh token from the field or the authorization header", async () => {
    const phoneNumber = uniquePhoneNumber();
    const { user, tokens } = await signUpAndLogin(server, { phoneNumber });
    const fromField = await server.grpc.verify({ accessToken: tokens.accessToken });
    const fromHeader = await server.grpc.verify(
      {},
      { authorization: `Bearer ${tokens.accessToken}` },
    );
    for (const verified of [fromField, fromHeader]) {
      expect(verified.userId).toBe(user.id);
      expect(verified.username).toBe(user.username);
      expect(verified.email).toBe(user.email);
      expect(verified.phoneNumber).toBe(phoneNumber);
      expect(verified.sessionId).toMatch(/^[0-9a-f-]{36}$/);
      expect(verified.claims).toMatchObject({
        iss: "auth-service",
        aud: "internal",
        sub: user.id,
        sid: verified.sessionId,
        username: user.username,
      });
      expect(typeof verified.claims?.jti).toBe("string");
      const lifetime = time(verified.expireTime).getTime() - time(verified.issueTime).getTime();
      expect(lifetime).toBe(15 * MINUTE);
    }
    const header = jwt.decode(tokens.accessToken, { complete: true })?.header;
    expect(header).toMatchObject({ alg: "ES256", typ: "at+jwt" });
    expect(header?.kid).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("answers TOKEN_INVALID with no token, a malformed one or a tampered one", async () => {
    const { tokens } = await signUpAndLogin(server);
    const [head, body, signature] = tokens.accessToken.split(".");
    const tampered = `${head}.${Buffer.from(
      JSON.stringify({ ...(jwt.decode(tokens.accessToken) as object), sub: "someone-else" }),
    ).toString("base64url")}.${signature}`;
    for (const request of [
      server.grpc.verify({}),
      server.grpc.verify({}, { authorization: "Basic abc" }),
      server.grpc.verify({ accessToken: "not-a-token" }),
      server.grpc.verify({ accessToken: tampered }),
      server.grpc.verify({ accessToken: `${head}.${body}.` }),
    ]) {
      const error = await grpcFailure(request);
      expect(error.code).toBe(status.UNAUTHENTICATED);
      expect(error.reason).toBe("TOKEN_INVALID");
    }
  });

  it("answers TOKEN_EXPIRED once the clock passes exp plus the leeway", async () => {
    const { tokens } = await signUpAndLogin(server);
    server.clock.advance(15 * MINUTE + 20_000); // within the 30 s leeway
    await server.grpc.verify({ accessToken: tokens.accessToken });
    server.clock.advance(11_000);
    const error = await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }));
    expect(error.reason).toBe("TOKEN_EXPIRED");
  });
});

describe("GetJwks", () => {
  it("publishes the ES256 key that verifies access tokens", async () => {
    const { tokens } = await signUpAndLogin(server);
    const { jwksJson } = await server.grpc.getJwks({});
    const { keys } = JSON.parse(jwksJson) as { keys: Array<Record<string, string>> };
    expect(keys).toHaveLength(1);
    const [jwk] = keys;
    expect(jwk).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(jwk).not.toHaveProperty("d");
    const publicKey = createPublicKey({ key: jwk as never, format: "jwk" });
    const verified = jwt.verify(tokens.accessToken, publicKey, {
      algorithms: ["ES256"],
      complete: true,
      clockTimestamp: Math.floor(server.clock.now / 1000),
    });
    expect(verified.header.kid).toBe(jwk?.kid);
  });

  it("publishes no key in HS256 mode, whose tokens still verify", async () => {
    const hs = await startTestServer({ JWT_SECRET: "an HS256 secret that is 32 bytes long!" });
    try {
      expect(JSON.parse((await hs.grpc.getJwks({})).jwksJson)).toEqual({ keys: [] });
      const { tokens } = await signUpAndLogin(hs);
      expect(jwt.decode(tokens.accessToken, { complete: true })?.header.alg).toBe("HS256");
      await hs.grpc.verify({ accessToken: tokens.accessToken });
    } finally {
      await hs.close();
    }
  });

  it("keeps the generated signing key across a restart", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "auth-keys-"));
    try {
      const first = await startTestServer({ DATA_DIR: dataDir });
      const { tokens } = await signUpAndLogin(first);
      const jwks = (await first.grpc.getJwks({})).jwksJson;
      await first.close();
      const second = await startTestServer({ DATA_DIR: dataDir });
      try {
        expect((await second.grpc.getJwks({})).jwksJson).toBe(jwks);
        const verified = await second.grpc.verify({ accessToken: tokens.accessToken });
        expect(verified.sessionId).not.toBe("");
      } finally {
        await second.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe("Refresh", () => {
  it("rotates: the new pair works and the old refresh token is spent", async () => {
    const { tokens } = await signUpAndLogin(server);
    server.clock.advance(1000);
    const { tokens: next } = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    expect(next?.refreshToken).not.toBe(tokens.refreshToken);
    expect(next?.accessToken).not.toBe(tokens.accessToken);
    const before = await server.grpc.verify({ accessToken: tokens.accessToken });
    const after = await server.grpc.verify({ accessToken: next?.accessToken ?? "" });
    expect(after.sessionId).toBe(before.sessionId);
    await server.grpc.refresh({ refreshToken: next?.refreshToken ?? "" });
  });

  it("revokes the whole session when a rotated token comes back", async () => {
    const { tokens } = await signUpAndLogin(server);
    const { tokens: next } = await server.grpc.refresh({ refreshToken: tokens.refreshToken });
    const reuse = await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }));
    expect(reuse).toMatchObject({ code: status.UNAUTHENTICATED, reason: "REFRESH_TOKEN_REUSED" });
    const newest = await grpcFailure(
      server.grpc.refresh({ refreshToken: next?.refreshToken ?? "" }),
    );
    expect(newest.reason).toBe("SESSION_REVOKED");
    const again = await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }));
    expect(again.reason).toBe("SESSION_REVOKED");
    const verify = await grpcFailure(server.grpc.verify({ accessToken: next?.accessToken ?? "" }));
    expect(verify.reason).toBe("SESSION_REVOKED");
  });

  it("lets exactly one of ten concurrent refreshes of one token succeed", async () => {
    const { tokens } = await signUpAndLogin(server);
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => server.grpc.refresh({ refreshToken: tokens.refreshToken })),
    );
    const winners = results.filter((result) => result.status === "fulfilled");
    expect(winners).toHaveLength(1);
    const reasons = await Promise.all(
      results
        .filter((result) => result.status === "rejected")
        .map((result) => grpcFailure(Promise.reject(result.reason))),
    );
    expect(reasons).toHaveLength(9);
    for (const error of reasons) {
      expect(["REFRESH_TOKEN_REUSED", "SESSION_REVOKED"]).toContain(error.reason);
    }
    expect(reasons.map((error) => error.reason)).toContain("REFRESH_TOKEN_REUSED");
    const rows = await server.app.db
      .selectFrom("refresh_tokens")
      .innerJoin("sessions", "sessions.id", "refresh_tokens.session_id")
      .select(["refresh_tokens.use_time"])
      .where("sessions.user_id", "=", (jwt.decode(tokens.accessToken) as { sub: string }).sub)
      .execute();
    expect(rows).toHaveLength(2); // the presented token, rotated once, and the one it became
  });

  it("answers INVALID_ARGUMENT for an empty token and REFRESH_TOKEN_INVALID for a wrong one", async () => {
    const empty = await grpcFailure(server.grpc.refresh({ refreshToken: "" }));
    expect(empty).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_ARGUMENT" });
    expect(empty.badFields).toEqual(["refresh_token"]);
    for (const refreshToken of ["garbage", "A".repeat(43), `${"A".repeat(42)}!`]) {
      const error = await grpcFailure(server.grpc.refresh({ refreshToken }));
      expect(error).toMatchObject({
        code: status.UNAUTHENTICATED,
        reason: "REFRESH_TOKEN_INVALID",
      });
    }
  });

  it("expires a refresh token at its lifetime, with no leeway", async () => {
    const short = await startTestServer({ REFRESH_TOKEN_TTL: "10m" });
    try {
      const { tokens } = await signUpAndLogin(short);
      const expireTime = time(tokens.refreshTokenExpireTime);
      expect(expireTime.getTime() - short.clock.now).toBeLessThanOrEqual(10 * MINUTE);
      expect(expireTime.getTime() - short.clock.now).toBeGreaterThan(10 * MINUTE - 5000);
      short.clock.now = expireTime.getTime();
      const error = await grpcFailure(short.grpc.refresh({ refreshToken: tokens.refreshToken }));
      expect(error.reason).toBe("REFRESH_TOKEN_EXPIRED");
    } finally {
      await short.close();
    }
  });

  it("never issues a refresh token past the session's absolute lifetime", async () => {
    const capped = await startTestServer({ REFRESH_TOKEN_TTL: "30d", SESSION_MAX_AGE: "45d" });
    try {
      const { tokens } = await signUpAndLogin(capped);
      const sessionEnd = capped.clock.now + 45 * DAY;
      capped.clock.advance(29 * DAY);
      const { tokens: second } = await capped.grpc.refresh({ refreshToken: tokens.refreshToken });
      const secondExpiry = time(second?.refreshTokenExpireTime);
      expect(Math.abs(secondExpiry.getTime() - sessionEnd)).toBeLessThan(1000);
      capped.clock.now = sessionEnd + 1000;
      const error = await grpcFailure(
        capped.grpc.refresh({ refreshToken: second?.refreshToken ?? "" }),
      );
      expect(error.reason).toBe("REFRESH_TOKEN_EXPIRED");
    } finally {
      await capped.close();
    }
  });
});

describe("Logout", () => {
  it("ends one session: its refresh and access tokens stop working, others go on", async () => {
    const { input, tokens } = await signUpAndLogin(server);
    const other = await server.grpc.login({ identifier: input.email, password: input.password });
    await server.grpc.logout({ refreshToken: tokens.refreshToken });
    expect(
      (await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }))).reason,
    ).toBe("SESSION_REVOKED");
    expect(
      (await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }))).reason,
    ).toBe("SESSION_REVOKED");
    expect(
      (await grpcFailure(server.grpc.logout({ refreshToken: tokens.refreshToken }))).reason,
    ).toBe("SESSION_REVOKED");
    await server.grpc.verify({ accessToken: other.tokens?.accessToken ?? "" });
    await server.grpc.refresh({ refreshToken: other.tokens?.refreshToken ?? "" });
  });

  it("ends every session of the user with all_sessions, and no one else's", async () => {
    const { input, tokens } = await signUpAndLogin(server);
    const second = await server.grpc.login({
      identifier: input.username,
      password: input.password,
    });
    const stranger = await signUpAndLogin(server);
    await server.grpc.logout({
      refreshToken: second.tokens?.refreshToken ?? "",
      allSessions: true,
    });
    for (const accessToken of [tokens.accessToken, second.tokens?.accessToken ?? ""]) {
      expect((await grpcFailure(server.grpc.verify({ accessToken }))).reason).toBe(
        "SESSION_REVOKED",
      );
    }
    expect(
      (await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }))).reason,
    ).toBe("SESSION_REVOKED");
    await server.grpc.verify({ accessToken: stranger.tokens.accessToken });
    const relogin = await server.grpc.login({
      identifier: input.username,
      password: input.password,
    });
    await server.grpc.verify({ accessToken: relogin.tokens?.accessToken ?? "" });
  });

  it("leaves a refresh racing it either refused or with tokens its revoked session refuses", async () => {
    for (let round = 0; round < 10; round++) {
      const { tokens } = await signUpAndLogin(server);
      const { refreshToken } = tokens;
      let refreshCall: ReturnType<GrpcAuthClient["refresh"]>;
      let logoutCall: ReturnType<GrpcAuthClient["logout"]>;
      // Sent in either order, so that either may reach the database first.
      if (round % 2 === 0) {
        refreshCall = server.grpc.refresh({ refreshToken });
        logoutCall = server.grpc.logout({ refreshToken });
      } else {
        logoutCall = server.grpc.logout({ refreshToken });
        refreshCall = server.grpc.refresh({ refreshToken });
      }
      const [refresh, logout] = await Promise.allSettled([refreshCall, logoutCall]);
      if (logout.status === "rejected") {
        // The refresh came first: the logout presented a rotated token.
        expect((await grpcFailure(Promise.reject(logout.reason))).reason).toBe(
          "REFRESH_TOKEN_REUSED",
        );
      }
      if (refresh.status === "rejected") {
        expect((await grpcFailure(Promise.reject(refresh.reason))).reason).toBe("SESSION_REVOKED");
        continue;
      }
      const next = refresh.value.tokens;
      expect(
        (await grpcFailure(server.grpc.refresh({ refreshToken: next?.refreshToken ?? "" }))).reason,
      ).toBe("SESSION_REVOKED");
      expect(
        (await grpcFailure(server.grpc.verify({ accessToken: next?.accessToken ?? "" }))).reason,
      ).toBe("SESSION_REVOKED");
    }
  });

  it("validates its token like Refresh does", async () => {
    const empty = await grpcFailure(server.grpc.logout({ refreshToken: "" }));
    expect(empty.reason).toBe("INVALID_ARGUMENT");
    expect(empty.badFields).toEqual(["refresh_token"]);
    const unknown = await grpcFailure(server.grpc.logout({ refreshToken: "B".repeat(43) }));
    expect(unknown.reason).toBe("REFRESH_TOKEN_INVALID");
    const input = newUser();
    await server.grpc.signUp(input);
    const login = await server.grpc.login({ identifier: input.username, password: input.password });
    await server.grpc.refresh({ refreshToken: login.tokens?.refreshToken ?? "" });
    const reused = await grpcFailure(
      server.grpc.logout({ refreshToken: login.tokens?.refreshToken ?? "" }),
    );
    expect(reused.reason).toBe("REFRESH_TOKEN_REUSED");
  });
});

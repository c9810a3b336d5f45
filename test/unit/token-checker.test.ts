import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AuthService } from "../../gen/auth/v1/auth_pb.js";
import { createTokenChecker } from "../../src/interceptors/index.js";
import { createAccessTokenIssuer } from "../../src/tokens/access-tokens.js";
import {
  generateEs256Pem,
  jwkSetJson,
  type SigningKey,
  signingKeyFromPem,
} from "../../src/tokens/signing-keys.js";

const NOW = Date.parse("2026-11-23T12:00:00Z");
const oldKey = signingKeyFromPem(generateEs256Pem(), "old");
const newKey = signingKeyFromPem(generateEs256Pem(), "new");
const user = {
  id: "6f1c2a9e-0000-4000-8000-000000000001",
  username: "ada",
  email: "ada@example.com",
  phoneNumber: undefined,
  firstName: "",
  lastName: "",
  createTime: new Date(NOW),
};

function tokenOf(key: SigningKey, sessionId = "6f1c2a9e-0000-4000-8000-0000000000aa") {
  const issue = createAccessTokenIssuer({
    key,
    issuer: "auth-service",
    audience: "internal",
    ttlMs: 15 * 60_000,
    clock: () => NOW,
  });
  return `Bearer ${issue(user, sessionId).token}`;
}

/** An in-memory auth service whose keys, answers and revocation streams a test controls. */
function fakeAuthService() {
  const state = {
    keys: [oldKey] as SigningKey[],
    failJwks: false,
    jwksCalls: 0,
    watchCalls: 0,
    /** Each WatchRevocations call gets the next script: messages, then end or break. */
    streams: [] as Array<{ snapshot: string[]; update?: string[]; breaks?: boolean }>,
  };
  const transport = createRouterTransport(({ service }) => {
    service(AuthService, {
      async getJwks() {
        state.jwksCalls++;
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (state.failJwks) {
          throw new ConnectError("down", Code.Unavailable);
        }
        return { jwksJson: jwkSetJson(state.keys) };
      },
      async *watchRevocations(_request, context) {
        const script = state.streams[state.watchCalls++] ?? { snapshot: [] };
        yield {
          sessionIds: script.snapshot,
          snapshot: true,
          revokeTime: timestampFromDate(new Date(NOW)),
        };
        if (script.update) {
          yield {
            sessionIds: script.update,
            snapshot: false,
            revokeTime: timestampFromDate(new Date(NOW)),
          };
        }
        if (script.breaks) {
          throw new ConnectError("stream broke", Code.Unavailable);
        }
        await new Promise((resolve) => context.signal.addEventListener("abort", resolve));
      },
    });
  });
  return { state, transport };
}

describe("createTokenChecker in local mode", () => {
  it("refetches the JWK Set once for a new kid, coalescing concurrent requests", async () => {
    const { state, transport } = fakeAuthService();
    const stop = new AbortController();
    let now = NOW;
    const checker = createTokenChecker({ transport, clock: () => now, signal: stop.signal });
    await checker.ready();
    expect((await checker.check(tokenOf(oldKey))).username).toBe("ada");
    expect(state.jwksCalls).toBe(1);

    state.keys = [newKey, oldKey];
    now += 10_000;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => checker.check(tokenOf(newKey))),
    );
    expect(results.every((principal) => principal.username === "ada")).toBe(true);
    expect(state.jwksCalls).toBe(2);
    stop.abort();
  });

  it("refetches at most once per interval for kids it cannot find", async () => {
    const { state, transport } = fakeAuthService();
    const stop = new AbortController();
    let now = NOW;
    const checker = createTokenChecker({
      transport,
      clock: () => now,
      signal: stop.signal,
      jwksMinRefetchIntervalMs: 5_000,
    });
    await checker.ready();
    const unknown = signingKeyFromPem(generateEs256Pem(), "unknown");
    now += 6_000;
    for (let i = 0; i < 10; i++) {
      await expect(checker.check(tokenOf(unknown))).rejects.toMatchObject({
        reason: "TOKEN_INVALID",
      });
      now += 100;
    }
    expect(state.jwksCalls).toBe(2);
    now += 5_000;
    await expect(checker.check(tokenOf(unknown))).rejects.toMatchObject({
      reason: "TOKEN_INVALID",
    });
    expect(state.jwksCalls).toBe(3);
    stop.abort();
  });

  it("keeps the last good keys when a refetch fails", async () => {
    const { state, transport } = fakeAuthService();
    const stop = new AbortController();
    let now = NOW;
    const errors: unknown[] = [];
    const checker = createTokenChecker({
      transport,
      clock: () => now,
      signal: stop.signal,
      onError: (error) => errors.push(error),
    });
    await checker.ready();
    state.failJwks = true;
    now += 10_000;
    await expect(checker.check(tokenOf(newKey))).rejects.toMatchObject({ reason: "TOKEN_INVALID" });
    expect(errors).toHaveLength(1);
    expect((await checker.check(tokenOf(oldKey))).username).toBe("ada");
    stop.abort();
  });

  it("reopens a broken revocation stream and takes the new snapshot as the truth", async () => {
    const { state, transport } = fakeAuthService();
    const stop = new AbortController();
    state.streams = [
      { snapshot: ["s-1"], update: ["s-2"], breaks: true },
      { snapshot: ["s-2", "s-3"] },
    ];
    const checker = createTokenChecker({ transport, clock: () => NOW, signal: stop.signal });
    await checker.ready();
    await expect
      .poll(() =>
        checker.check(tokenOf(oldKey, "s-3")).then(
          () => "accepted",
          (e) => e.reason,
        ),
      )
      .toBe("SESSION_REVOKED");
    expect(state.watchCalls).toBe(2);
    await expect(checker.check(tokenOf(oldKey, "s-2"))).rejects.toMatchObject({
      reason: "SESSION_REVOKED",
    });
    // Not in the newest snapshot: the service no longer counts it (its tokens expired).
    expect((await checker.check(tokenOf(oldKey, "s-1"))).sessionId).toBe("s-1");
    stop.abort();
  });
});

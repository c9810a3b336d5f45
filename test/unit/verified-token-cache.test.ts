import { describe, expect, it } from "vitest";
import { AuthError } from "../../src/auth-error.js";
import {
  type AccessTokenVerifier,
  type VerifiedAccessToken,
  withRevocationCheck,
} from "../../src/tokens/access-tokens.js";
import { createRevocationList } from "../../src/tokens/revocations.js";
import {
  createVerifiedTokenCache,
  forgetRevokedTokens,
  withVerifiedTokenCache,
} from "../../src/tokens/verified-token-cache.js";

const START = Date.UTC(2026, 10, 23, 12, 0, 0);
const TTL_MS = 15 * 60 * 1000;

/** Tokens are "<session>/<serial>"; every one expires TTL_MS after START. */
function fakeVerifier(): { verify: AccessTokenVerifier; calls: string[] } {
  const calls: string[] = [];
  const verify: AccessTokenVerifier = (token) => {
    calls.push(token);
    if (token.startsWith("bad")) {
      throw new AuthError("TOKEN_INVALID", "the access token is invalid");
    }
    const sessionId = token.split("/")[0] as string;
    const verified: VerifiedAccessToken = {
      userId: "user",
      username: "alice",
      email: "alice@example.com",
      phoneNumber: undefined,
      sessionId,
      issueTime: new Date(START),
      expireTime: new Date(START + TTL_MS),
      claims: { sid: sessionId },
    };
    return verified;
  };
  return { verify, calls };
}

function setup(maxEntries: number) {
  const clock = { now: START };
  const cache = createVerifiedTokenCache({ maxEntries, clock: () => clock.now });
  const { verify, calls } = fakeVerifier();
  return { clock, cache, calls, verify: withVerifiedTokenCache(verify, cache) };
}

describe("verified token cache", () => {
  it("verifies a token once and answers it again from memory", () => {
    const { verify, calls } = setup(10);
    const first = verify("s1/1");
    expect(verify("s1/1")).toBe(first);
    expect(calls).toEqual(["s1/1"]);
  });

  it("keeps no failure: a bad token is checked every time", () => {
    const { verify, calls, cache } = setup(10);
    expect(() => verify("bad")).toThrow(AuthError);
    expect(() => verify("bad")).toThrow(AuthError);
    expect(calls).toEqual(["bad", "bad"]);
    expect(cache.size).toBe(0);
  });

  it("drops an entry at its token's exp, so the verifier decides again", () => {
    const { verify, calls, clock, cache } = setup(10);
    verify("s1/1");
    clock.now = START + TTL_MS - 1;
    verify("s1/1");
    expect(calls).toHaveLength(1);
    clock.now = START + TTL_MS;
    verify("s1/1");
    expect(calls).toHaveLength(2);
    expect(cache.size).toBe(1);
  });

  it("evicts the least recently used token when full", () => {
    const { verify, calls, cache } = setup(2);
    verify("s1/1");
    verify("s1/2");
    verify("s1/1");
    verify("s1/3");
    expect(cache.size).toBe(2);
    verify("s1/1");
    verify("s1/3");
    expect(calls).toEqual(["s1/1", "s1/2", "s1/3"]);
    verify("s1/2");
    expect(calls).toEqual(["s1/1", "s1/2", "s1/3", "s1/2"]);
  });

  it("forgets every token of a revoked session and no other", () => {
    const { verify, calls, cache } = setup(10);
    verify("s1/1");
    verify("s1/2");
    verify("s2/1");
    cache.forgetSessions(["s1"]);
    expect(cache.size).toBe(1);
    verify("s1/1");
    verify("s2/1");
    expect(calls).toEqual(["s1/1", "s1/2", "s2/1", "s1/1"]);
  });

  it("with size 0 keeps nothing", () => {
    const { verify, calls, cache } = setup(0);
    verify("s1/1");
    verify("s1/1");
    expect(calls).toHaveLength(2);
    expect(cache.size).toBe(0);
  });

  it("still refuses a cached token once its session is revoked", () => {
    const { verify } = setup(10);
    const revoked = new Set<string>();
    const checked = withRevocationCheck(verify, (sessionId) => revoked.has(sessionId));
    expect(checked("s1/1").sessionId).toBe("s1");
    revoked.add("s1");
    expect(() => checked("s1/1")).toThrow(
      expect.objectContaining({ reason: "SESSION_REVOKED" }) as unknown as Error,
    );
  });

  it("forgets the tokens of sessions the revocation list hears of", async () => {
    const { verify, calls, cache, clock } = setup(10);
    const revocations = createRevocationList({ clock: () => clock.now, retentionMs: TTL_MS });
    forgetRevokedTokens(revocations, cache);
    verify("s1/1");
    verify("s2/1");
    // Lets the follower take its snapshot before the revocation arrives.
    await new Promise((resolve) => setImmediate(resolve));
    revocations.add({ sessionIds: ["s1"], revokeTime: new Date(clock.now) });
    await new Promise((resolve) => setImmediate(resolve));
    expect(cache.size).toBe(1);
    verify("s1/1");
    expect(calls).toEqual(["s1/1", "s2/1", "s1/1"]);
    revocations.close();
  });
});

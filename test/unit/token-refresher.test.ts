import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createRouterTransport } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { AuthService, TokenPairSchema } from "../../gen/auth/v1/auth_pb.js";
import { createTokenRefresher } from "../../src/interceptors/index.js";

const NOW = Date.parse("2026-11-23T12:00:00Z");
const MINUTE = 60_000;

function pair(n: number, expireTime: number) {
  return create(TokenPairSchema, {
    accessToken: `access-${n}`,
    accessTokenExpireTime: timestampFromDate(new Date(expireTime)),
    refreshToken: `refresh-${n}`,
    tokenType: "Bearer",
  });
}

function fakeRefresh(options: { fail?: boolean } = {}) {
  const presented: string[] = [];
  const transport = createRouterTransport(({ service }) => {
    service(AuthService, {
      async refresh(request) {
        presented.push(request.refreshToken);
        await new Promise((resolve) => setTimeout(resolve, 5));
        if (options.fail) {
          throw new ConnectError("down", Code.Unavailable);
        }
        const n = presented.length;
        return { tokens: pair(n, NOW + 15 * MINUTE) };
      },
    });
  });
  return { presented, transport };
}

describe("createTokenRefresher", () => {
  it("hands out the token as is while it is far from expiry", async () => {
    const { presented, transport } = fakeRefresh();
    const source = createTokenRefresher({
      transport,
      tokens: pair(0, NOW + 10 * MINUTE),
      clock: () => NOW,
    });
    expect(await source.accessToken()).toBe("access-0");
    expect(presented).toEqual([]);
  });

  it("refreshes shortly before expiry, once for all concurrent callers, with the newest token", async () => {
    const { presented, transport } = fakeRefresh();
    const seen: string[] = [];
    let now = NOW;
    const source = createTokenRefresher({
      transport,
      tokens: pair(0, NOW + 20_000),
      clock: () => now,
      onTokens: (tokens) => seen.push(tokens.refreshToken),
    });
    const tokens = await Promise.all(Array.from({ length: 10 }, () => source.accessToken()));
    expect(new Set(tokens)).toEqual(new Set(["access-1"]));
    expect(presented).toEqual(["refresh-0"]);
    now += 15 * MINUTE - 10_000;
    expect(await source.accessToken()).toBe("access-2");
    expect(presented).toEqual(["refresh-0", "refresh-1"]);
    expect(seen).toEqual(["refresh-1", "refresh-2"]);
  });

  it("keeps the old token while it is valid when a refresh fails, then gives up", async () => {
    const { transport } = fakeRefresh({ fail: true });
    let now = NOW;
    const source = createTokenRefresher({
      transport,
      tokens: pair(0, NOW + 20_000),
      clock: () => now,
    });
    expect(await source.accessToken()).toBe("access-0");
    now += 21_000;
    await expect(source.accessToken()).rejects.toBeInstanceOf(ConnectError);
  });
});

import { availableParallelism } from "node:os";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

const MINUTE = 60_000;

describe("loadConfig: limits and grace", () => {
  it("defaults to DESIGN.md §4c's limits, strict refresh and a hash queue sized to the cores", () => {
    expect(loadConfig({})).toMatchObject({
      rateLimitLoginIdentifier: { limit: 5, windowMs: 15 * MINUTE },
      rateLimitLoginAddress: { limit: 100, windowMs: 15 * MINUTE },
      rateLimitSignUpAddress: { limit: 20, windowMs: 60 * MINUTE },
      trustProxy: false,
      refreshReuseGraceMs: 0,
      hashConcurrency: availableParallelism(),
      hashQueueMax: 64,
    });
  });

  it("reads rates, the proxy flag, the grace and the queue", () => {
    expect(
      loadConfig({
        RATE_LIMIT_LOGIN_IDENTIFIER: "10/1h",
        RATE_LIMIT_LOGIN_ADDRESS: "500/30m",
        RATE_LIMIT_SIGNUP_ADDRESS: "3/1d",
        TRUST_PROXY: "true",
        REFRESH_REUSE_GRACE: "10s",
        HASH_CONCURRENCY: "4",
        HASH_QUEUE_MAX: "0",
      }),
    ).toMatchObject({
      rateLimitLoginIdentifier: { limit: 10, windowMs: 60 * MINUTE },
      rateLimitLoginAddress: { limit: 500, windowMs: 30 * MINUTE },
      rateLimitSignUpAddress: { limit: 3, windowMs: 24 * 60 * MINUTE },
      trustProxy: true,
      refreshReuseGraceMs: 10_000,
      hashConcurrency: 4,
      hashQueueMax: 0,
    });
  });

  it.each([
    ["RATE_LIMIT_LOGIN_IDENTIFIER", "5"],
    ["RATE_LIMIT_LOGIN_IDENTIFIER", "0/15m"],
    ["RATE_LIMIT_LOGIN_ADDRESS", "100/soon"],
    ["RATE_LIMIT_SIGNUP_ADDRESS", "1.5/1h"],
    ["RATE_LIMIT_SIGNUP_ADDRESS", "20/10ms"],
    ["TRUST_PROXY", "yes please"],
    ["REFRESH_REUSE_GRACE", "2m"],
    ["HASH_CONCURRENCY", "0"],
    ["HASH_QUEUE_MAX", "-1"],
  ])("refuses %s=%s with a one-line ConfigError naming it", (variable, value) => {
    expect(() => loadConfig({ [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [variable]: value })).toThrow(variable);
  });
});

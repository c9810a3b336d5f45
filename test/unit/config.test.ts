import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const SECRET = "s".repeat(32);

/** The error `loadConfig(env)` throws; undefined when it does not throw. */
function configError(env: Record<string, string | undefined>): unknown {
  try {
    loadConfig(env);
  } catch (error) {
    return error;
  }
  return undefined;
}

describe("loadConfig", () => {
  it("defaults to the values of DESIGN.md §4c", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 50051,
      httpPort: 8080,
      databaseUrl: undefined,
      databasePreparedStatements: true,
      dataDir: "./data",
      accessTokenTtlMs: 15 * MINUTE,
      refreshTokenTtlMs: 30 * DAY,
      sessionMaxAgeMs: 90 * DAY,
      jwtIssuer: "auth-service",
      jwtAudience: "internal",
      jwtPrivateKeyPem: undefined,
      jwtPrivateKeyFile: undefined,
      jwtSecret: undefined,
      jwtKeysDir: undefined,
      revocationSyncIntervalMs: 30 * SECOND,
      verifyCacheSize: 10_000,
      argon2: { memoryKib: 19456, timeCost: 2, parallelism: 1 },
    });
    expect(config.accessTokenTtlMs).toBe(900_000);
    expect(config.clockToleranceMs).toBeGreaterThanOrEqual(0);
    expect(config.clockToleranceMs).toBeLessThanOrEqual(30 * SECOND);
  });

  it("ignores variables it does not know", () => {
    expect(loadConfig({ PATH: "/usr/bin", HOME: "/root" }).port).toBe(50051);
  });

  it("reads every variable it is given", () => {
    const config = loadConfig({
      HOST: "127.0.0.1",
      PORT: "9000",
      HTTP_PORT: "9001",
      DATABASE_URL: "postgres://user:pw@db:5432/auth",
      DATABASE_PREPARED_STATEMENTS: "false",
      DATA_DIR: "/var/lib/auth",
      ACCESS_TOKEN_TTL: "5m",
      REFRESH_TOKEN_TTL: "7d",
      SESSION_MAX_AGE: "60d",
      JWT_CLOCK_TOLERANCE: "10s",
      JWT_ISSUER: "https://auth.example.com",
      JWT_AUDIENCE: "fleet",
      JWT_SECRET: SECRET,
      ARGON2_MEMORY_KIB: "65536",
      ARGON2_TIME_COST: "3",
      ARGON2_PARALLELISM: "4",
    });
    expect(config).toMatchObject({
      host: "127.0.0.1",
      port: 9000,
      httpPort: 9001,
      databaseUrl: "postgres://user:pw@db:5432/auth",
      databasePreparedStatements: false,
      dataDir: "/var/lib/auth",
      accessTokenTtlMs: 5 * MINUTE,
      refreshTokenTtlMs: 7 * DAY,
      sessionMaxAgeMs: 60 * DAY,
      clockToleranceMs: 10 * SECOND,
      jwtIssuer: "https://auth.example.com",
      jwtAudience: "fleet",
      jwtSecret: SECRET,
      argon2: { memoryKib: 65536, timeCost: 3, parallelism: 4 },
    });
  });

  it.each([
    ["30s", 30 * SECOND],
    ["15m", 15 * MINUTE],
    ["2h", 2 * HOUR],
    ["30d", 30 * DAY],
    ["1d", DAY],
  ])("reads the duration %s", (text, value) => {
    expect(loadConfig({ ACCESS_TOKEN_TTL: text }).accessTokenTtlMs).toBe(value);
    expect(loadConfig({ REFRESH_TOKEN_TTL: text }).refreshTokenTtlMs).toBe(value);
    expect(loadConfig({ SESSION_MAX_AGE: text }).sessionMaxAgeMs).toBe(value);
  });

  it.each([
    ["0s", 0],
    ["10s", 10 * SECOND],
    ["30s", 30 * SECOND],
  ])("accepts a clock tolerance of %s", (text, value) => {
    expect(loadConfig({ JWT_CLOCK_TOLERANCE: text }).clockToleranceMs).toBe(value);
  });

  it("reads JWT_PRIVATE_KEY and JWT_PRIVATE_KEY_FILE (one at a time)", () => {
    expect(loadConfig({ JWT_PRIVATE_KEY: "-----BEGIN PRIVATE KEY-----" }).jwtPrivateKeyPem).toBe(
      "-----BEGIN PRIVATE KEY-----",
    );
    expect(loadConfig({ JWT_PRIVATE_KEY_FILE: "/keys/jwt.pem" }).jwtPrivateKeyFile).toBe(
      "/keys/jwt.pem",
    );
  });

  it("treats an empty JWT_SECRET as unset", () => {
    expect(loadConfig({ JWT_SECRET: "" }).jwtSecret).toBeUndefined();
  });

  it("accepts a 32-byte JWT_SECRET, counting bytes rather than characters", () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).jwtSecret).toBe(SECRET);
    // 16 two-byte characters are 32 bytes.
    expect(loadConfig({ JWT_SECRET: "\u00e9".repeat(16) }).jwtSecret).toBe("\u00e9".repeat(16));
  });

  it.each([
    ["PORT", { PORT: "abc" }],
    ["PORT", { PORT: "1.5" }],
    ["PORT", { PORT: "-1" }],
    ["PORT", { PORT: "65536" }],
    ["HTTP_PORT", { HTTP_PORT: "http" }],
    ["ACCESS_TOKEN_TTL", { ACCESS_TOKEN_TTL: "soon" }],
    ["ACCESS_TOKEN_TTL", { ACCESS_TOKEN_TTL: "-5m" }],
    ["ACCESS_TOKEN_TTL", { ACCESS_TOKEN_TTL: "10ms" }],
    ["REFRESH_TOKEN_TTL", { REFRESH_TOKEN_TTL: "forever" }],
    ["SESSION_MAX_AGE", { SESSION_MAX_AGE: "ninety days" }],
    ["JWT_CLOCK_TOLERANCE", { JWT_CLOCK_TOLERANCE: "1m" }],
    ["JWT_CLOCK_TOLERANCE", { JWT_CLOCK_TOLERANCE: "31s" }],
    ["JWT_SECRET", { JWT_SECRET: "too short" }],
    ["JWT_SECRET", { JWT_SECRET: "s".repeat(31) }],
    ["JWT_SECRET", { JWT_SECRET: SECRET, JWT_PRIVATE_KEY: "-----BEGIN PRIVATE KEY-----" }],
    ["JWT_SECRET", { JWT_SECRET: SECRET, JWT_PRIVATE_KEY_FILE: "/keys/jwt.pem" }],
    ["JWT_PRIVATE_KEY", { JWT_PRIVATE_KEY: "pem", JWT_PRIVATE_KEY_FILE: "/keys/jwt.pem" }],
    ["JWT_KEYS_DIR", { JWT_SECRET: SECRET, JWT_KEYS_DIR: "/keys" }],
    ["REVOCATION_SYNC_INTERVAL", { REVOCATION_SYNC_INTERVAL: "10ms" }],
    ["DATABASE_URL", { DATABASE_URL: "mysql://db/auth" }],
    ["ARGON2_MEMORY_KIB", { ARGON2_MEMORY_KIB: "lots" }],
    ["ARGON2_MEMORY_KIB", { ARGON2_MEMORY_KIB: "8" }],
    ["ARGON2_TIME_COST", { ARGON2_TIME_COST: "0" }],
    ["ARGON2_PARALLELISM", { ARGON2_PARALLELISM: "0" }],
    ["LOG_LEVEL", { LOG_LEVEL: "loud" }],
    ["WORKERS", { WORKERS: "0", DATABASE_URL: "postgres://db/auth" }],
    ["WORKERS", { WORKERS: "auto", DATABASE_URL: "postgres://db/auth" }],
    ["WORKERS", { WORKERS: "65", DATABASE_URL: "postgres://db/auth" }],
    ["WORKERS", { WORKERS: "2" }],
  ])("refuses a bad %s with a one-line ConfigError naming it (%j)", (variable, env) => {
    const error = configError(env);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain(variable);
    expect(message).not.toMatch(/[\r\n]/);
  });

  it("runs one process unless WORKERS says more, which needs PostgreSQL", () => {
    expect(loadConfig({}).workers).toBe(1);
    expect(loadConfig({ WORKERS: "1" }).workers).toBe(1);
    expect(loadConfig({ WORKERS: "4", DATABASE_URL: "postgres://db/auth" }).workers).toBe(4);
    expect((configError({ WORKERS: "2" }) as ConfigError).message).toBe(
      "Invalid setting WORKERS: more than 1 needs DATABASE_URL (the embedded PGlite cannot be shared by processes)",
    );
  });

  it("does not echo JWT_SECRET in its error", () => {
    const error = configError({ JWT_SECRET: "hunter2-secret" });
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).not.toContain("hunter2-secret");
  });

  // An empty variable (`PORT=` in an env file) means unset: never port 0, an empty
  // issuer, or a library's own error.
  it.each([
    ["PORT", "port", 50051],
    ["HTTP_PORT", "httpPort", 8080],
    ["ACCESS_TOKEN_TTL", "accessTokenTtlMs", 15 * MINUTE],
    ["REFRESH_TOKEN_TTL", "refreshTokenTtlMs", 30 * DAY],
    ["SESSION_MAX_AGE", "sessionMaxAgeMs", 90 * DAY],
    ["JWT_CLOCK_TOLERANCE", "clockToleranceMs", 30 * SECOND],
    ["SHUTDOWN_TIMEOUT", "shutdownTimeoutMs", 10 * SECOND],
    ["JWT_ISSUER", "jwtIssuer", "auth-service"],
    ["JWT_AUDIENCE", "jwtAudience", "internal"],
    ["REVOCATION_SYNC_INTERVAL", "revocationSyncIntervalMs", 30 * SECOND],
    ["JWT_KEYS_DIR", "jwtKeysDir", undefined],
    ["VERIFY_CACHE_SIZE", "verifyCacheSize", 10_000],
  ] as const)("treats an empty or blank %s as unset", (variable, field, fallback) => {
    expect(loadConfig({ [variable]: "" })[field]).toBe(fallback);
    expect(loadConfig({ [variable]: "  " })[field]).toBe(fallback);
  });
});

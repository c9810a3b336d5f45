import { availableParallelism } from "node:os";
import ms from "ms";
import { z } from "zod";

/** At most `limit` events per `windowMs` (settings written like `5/15m`). */
export interface RateLimit {
  limit: number;
  windowMs: number;
}

export interface Argon2Params {
  memoryKib: number;
  timeCost: number;
  parallelism: number;
}

/** Every setting of the service, parsed and checked once at start. */
export interface Config {
  host: string;
  port: number;
  httpPort: number;
  /** PostgreSQL URL; undefined means the embedded PGlite in `dataDir`. */
  databaseUrl: string | undefined;
  /**
   * Embedded database and generated signing key. Always set from the environment;
   * undefined (tests only) keeps both in memory.
   */
  dataDir: string | undefined;
  accessTokenTtlMs: number;
  refreshTokenTtlMs: number;
  sessionMaxAgeMs: number;
  /** Leeway for access-token exp/nbf/iat checks. */
  clockToleranceMs: number;
  jwtIssuer: string;
  jwtAudience: string;
  jwtPrivateKeyPem: string | undefined;
  jwtPrivateKeyFile: string | undefined;
  jwtSecret: string | undefined;
  /** Directory of ES256 PEM keys: all verify, the active one signs (see src/tokens/key-store.ts). */
  jwtKeysDir: string | undefined;
  /** How often revoked sessions are re-read, healing any missed notification. */
  revocationSyncIntervalMs: number;
  argon2: Argon2Params;
  /** Password hashes computed at once; more wait in a queue of at most `hashQueueMax`. */
  hashConcurrency: number;
  hashQueueMax: number;
  /** Failed logins per identifier, failed logins per client address, sign-ups per client address. */
  rateLimitLoginIdentifier: RateLimit;
  rateLimitLoginAddress: RateLimit;
  rateLimitSignUpAddress: RateLimit;
  /** Take the client address from the first `x-forwarded-for` hop instead of the socket. */
  trustProxy: boolean;
  /** How long a rotated refresh token may still be presented (0: strict rotation). */
  refreshReuseGraceMs: number;
  /** How long in-flight calls may run after SIGTERM before they are cut. */
  shutdownTimeoutMs: number;
  logLevel: string;
}

const MAX_CLOCK_TOLERANCE_MS = 30_000;

const duration = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx) => {
      const value = ms(text as ms.StringValue);
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        ctx.addIssue({ code: "custom", message: `expected a duration like "30s", "15m" or "30d"` });
        return z.NEVER;
      }
      return value;
    });

const integer = (fallback: number, min: number, max: number) =>
  z.coerce.number().int().min(min).max(max).default(fallback);

const optionalText = z.string().optional();

const rate = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((text, ctx): RateLimit => {
      const match = /^(\d+)\/(.+)$/.exec(text);
      const limit = match ? Number(match[1]) : Number.NaN;
      const windowMs = match ? ms(match[2] as ms.StringValue) : Number.NaN;
      if (!(limit >= 1 && Number.isSafeInteger(limit) && windowMs >= 1000)) {
        ctx.addIssue({
          code: "custom",
          message: `expected a rate like "5/15m" (at least 1 per 1s)`,
        });
        return z.NEVER;
      }
      return { limit, windowMs };
    });

const flag = z
  .enum(["true", "false", "1", "0"])
  .default("false")
  .transform((text) => text === "true" || text === "1");

const environmentSchema = z
  .object({
    HOST: z.string().min(1).default("0.0.0.0"),
    PORT: integer(50051, 0, 65535),
    HTTP_PORT: integer(8080, 0, 65535),
    DATABASE_URL: optionalText.refine(
      (url) => url === undefined || /^postgres(ql)?:\/\//.test(url),
      'expected a URL starting with "postgres://" or "postgresql://"',
    ),
    DATA_DIR: z.string().min(1).default("./data"),
    ACCESS_TOKEN_TTL: duration("15m").refine((v) => v >= 1000, "must be at least 1s"),
    REFRESH_TOKEN_TTL: duration("30d").refine((v) => v >= 1000, "must be at least 1s"),
    SESSION_MAX_AGE: duration("90d").refine((v) => v >= 1000, "must be at least 1s"),
    JWT_CLOCK_TOLERANCE: duration("30s").refine(
      (v) => v <= MAX_CLOCK_TOLERANCE_MS,
      "must be at most 30s",
    ),
    JWT_ISSUER: z.string().min(1).default("auth-service"),
    JWT_AUDIENCE: z.string().min(1).default("internal"),
    JWT_PRIVATE_KEY: optionalText,
    JWT_PRIVATE_KEY_FILE: optionalText,
    JWT_SECRET: optionalText.refine(
      (secret) => secret === undefined || Buffer.byteLength(secret) >= 32,
      "must be at least 32 bytes",
    ),
    JWT_KEYS_DIR: optionalText,
    REVOCATION_SYNC_INTERVAL: duration("30s").refine((v) => v >= 100, "must be at least 100ms"),
    // OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
    ARGON2_MEMORY_KIB: integer(19456, 1024, 4 * 1024 * 1024),
    ARGON2_TIME_COST: integer(2, 1, 100),
    ARGON2_PARALLELISM: integer(1, 1, 64),
    HASH_CONCURRENCY: integer(availableParallelism(), 1, 256),
    HASH_QUEUE_MAX: integer(64, 0, 100_000),
    // NIST SP 800-63B §5.2.2: limit failed attempts per account, back off beyond.
    RATE_LIMIT_LOGIN_IDENTIFIER: rate("5/15m"),
    RATE_LIMIT_LOGIN_ADDRESS: rate("100/15m"),
    RATE_LIMIT_SIGNUP_ADDRESS: rate("20/1h"),
    TRUST_PROXY: flag,
    REFRESH_REUSE_GRACE: duration("0s").refine((v) => v <= 60_000, "must be at most 60s"),
    SHUTDOWN_TIMEOUT: duration("10s"),
    LOG_LEVEL: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
      .default("info"),
  })
  .refine((env) => !(env.JWT_SECRET && (env.JWT_PRIVATE_KEY || env.JWT_PRIVATE_KEY_FILE)), {
    message:
      "set either JWT_SECRET (HS256) or JWT_PRIVATE_KEY/JWT_PRIVATE_KEY_FILE (ES256), not both",
    path: ["JWT_SECRET"],
  })
  .refine((env) => !(env.JWT_SECRET && env.JWT_KEYS_DIR), {
    message: "set either JWT_SECRET (HS256) or JWT_KEYS_DIR (ES256), not both",
    path: ["JWT_KEYS_DIR"],
  })
  .refine((env) => !(env.JWT_PRIVATE_KEY && env.JWT_PRIVATE_KEY_FILE), {
    message: "set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE, not both",
    path: ["JWT_PRIVATE_KEY"],
  });

/** Thrown for a bad setting; the message is one line naming the variable. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Reads the settings from an environment (normally `process.env`). */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // A variable set to nothing (a blank line in an env file) means unset, never 0 or "".
  const setVariables = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ""),
  );
  const result = environmentSchema.safeParse(setVariables);
  if (!result.success) {
    const issue = result.error.issues[0];
    const variable = issue?.path.join(".") || "environment";
    throw new ConfigError(`Invalid setting ${variable}: ${issue?.message ?? "invalid value"}`);
  }
  const e = result.data;
  return {
    host: e.HOST,
    port: e.PORT,
    httpPort: e.HTTP_PORT,
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    accessTokenTtlMs: e.ACCESS_TOKEN_TTL,
    refreshTokenTtlMs: e.REFRESH_TOKEN_TTL,
    sessionMaxAgeMs: e.SESSION_MAX_AGE,
    clockToleranceMs: e.JWT_CLOCK_TOLERANCE,
    jwtIssuer: e.JWT_ISSUER,
    jwtAudience: e.JWT_AUDIENCE,
    jwtPrivateKeyPem: e.JWT_PRIVATE_KEY,
    jwtPrivateKeyFile: e.JWT_PRIVATE_KEY_FILE,
    jwtSecret: e.JWT_SECRET,
    jwtKeysDir: e.JWT_KEYS_DIR,
    revocationSyncIntervalMs: e.REVOCATION_SYNC_INTERVAL,
    argon2: {
      memoryKib: e.ARGON2_MEMORY_KIB,
      timeCost: e.ARGON2_TIME_COST,
      parallelism: e.ARGON2_PARALLELISM,
    },
    hashConcurrency: e.HASH_CONCURRENCY,
    hashQueueMax: e.HASH_QUEUE_MAX,
    rateLimitLoginIdentifier: e.RATE_LIMIT_LOGIN_IDENTIFIER,
    rateLimitLoginAddress: e.RATE_LIMIT_LOGIN_ADDRESS,
    rateLimitSignUpAddress: e.RATE_LIMIT_SIGNUP_ADDRESS,
    trustProxy: e.TRUST_PROXY,
    refreshReuseGraceMs: e.REFRESH_REUSE_GRACE,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT,
    logLevel: e.LOG_LEVEL,
  };
}

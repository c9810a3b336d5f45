import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseEnv } from "node:util";
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
  /** Access tokens kept after a successful verify (src/tokens/verified-token-cache.ts); 0 = none. */
  verifyCacheSize: number;
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
  /** Admin HTTP port (metrics and probes); 0 picks a free one. */
  adminPort: number;
  /** Processes serving the ports; more than 1 runs a node:cluster primary (src/cluster.ts). */
  workers: number;
  databasePoolSize: number;
  /** Queries as named prepared statements (PostgreSQL only). */
  databasePreparedStatements: boolean;
  activeSessionsIntervalMs: number;
  /** OTLP/HTTP collector base URL; undefined turns tracing off. */
  otlpEndpoint: string | undefined;
  serviceName: string;
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

const flag = (byDefault: boolean) =>
  z
    .enum(["true", "false", "1", "0"])
    .default(byDefault ? "true" : "false")
    .transform((text) => text === "true" || text === "1");

export const environmentSchema = z
  .object({
    HOST: z.string().min(1).default("0.0.0.0").describe("Address every port binds to."),
    PORT: integer(50051, 0, 65535).describe("gRPC port (AuthService, health, reflection)."),
    HTTP_PORT: integer(8080, 0, 65535).describe("Connect and gRPC-Web port."),
    ADMIN_PORT: integer(9090, 0, 65535).describe(
      "Admin HTTP port: /metrics (Prometheus), /healthz (liveness), /readyz (database answers).",
    ),
    WORKERS: integer(1, 1, 64).describe(
      "Processes serving PORT and HTTP_PORT together (node:cluster); more than 1 needs DATABASE_URL.",
    ),
    DATABASE_URL: optionalText
      .refine(
        (url) => url === undefined || /^postgres(ql)?:\/\//.test(url),
        'expected a URL starting with "postgres://" or "postgresql://"',
      )
      .describe("PostgreSQL URL; unset means the embedded PGlite in DATA_DIR."),
    DATABASE_POOL_SIZE: integer(10, 1, 1000).describe(
      "PostgreSQL connections per process (the pg pool's max; each of WORKERS has its own).",
    ),
    DATABASE_PREPARED_STATEMENTS: flag(true).describe(
      "Send queries as named prepared statements, planned once per connection (false for a pooler without prepared-statement support).",
    ),
    DATA_DIR: z
      .string()
      .min(1)
      .default("./data")
      .describe("Embedded database and generated signing key."),
    ACCESS_TOKEN_TTL: duration("15m")
      .refine((v) => v >= 1000, "must be at least 1s")
      .describe("Lifetime of an access JWT."),
    REFRESH_TOKEN_TTL: duration("30d")
      .refine((v) => v >= 1000, "must be at least 1s")
      .describe("Lifetime of each refresh token."),
    SESSION_MAX_AGE: duration("90d")
      .refine((v) => v >= 1000, "must be at least 1s")
      .describe("Absolute lifetime of a session across refreshes."),
    JWT_CLOCK_TOLERANCE: duration("30s")
      .refine((v) => v <= MAX_CLOCK_TOLERANCE_MS, "must be at most 30s")
      .describe("Leeway for exp/nbf/iat when verifying access tokens (at most 30s)."),
    JWT_ISSUER: z
      .string()
      .min(1)
      .default("auth-service")
      .describe("The iss claim, issued and required."),
    JWT_AUDIENCE: z
      .string()
      .min(1)
      .default("internal")
      .describe("The aud claim, issued and required."),
    JWT_PRIVATE_KEY: optionalText.describe("ES256 signing key: EC P-256 private key as PEM."),
    JWT_PRIVATE_KEY_FILE: optionalText.describe("Path to the ES256 signing key (PEM)."),
    JWT_SECRET: optionalText
      .refine(
        (secret) => secret === undefined || Buffer.byteLength(secret) >= 32,
        "must be at least 32 bytes",
      )
      .describe("Switches to HS256 with this shared secret (at least 32 bytes)."),
    JWT_KEYS_DIR: optionalText.describe(
      "Directory of ES256 PEM keys (all verify, the active one signs); default DATA_DIR/keys.",
    ),
    REVOCATION_SYNC_INTERVAL: duration("30s")
      .refine((v) => v >= 100, "must be at least 100ms")
      .describe("How often revoked sessions are re-read, healing a missed notification."),
    VERIFY_CACHE_SIZE: integer(10_000, 0, 1_000_000).describe(
      "Access tokens remembered after a successful Verify (0 = none).",
    ),
    // OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
    ARGON2_MEMORY_KIB: integer(19456, 1024, 4 * 1024 * 1024).describe(
      "argon2id memory cost in KiB.",
    ),
    ARGON2_TIME_COST: integer(2, 1, 100).describe("argon2id iterations."),
    ARGON2_PARALLELISM: integer(1, 1, 64).describe("argon2id lanes."),
    SHUTDOWN_TIMEOUT: duration("10s").describe(
      "How long in-flight calls may run after SIGTERM/SIGINT.",
    ),
    HASH_CONCURRENCY: integer(availableParallelism(), 1, 256).describe(
      "Password hashes computed at once per process (default: the number of cores).",
    ),
    HASH_QUEUE_MAX: integer(64, 0, 100_000).describe(
      "Hashes that may wait for a free slot; beyond it calls answer RATE_LIMITED at once.",
    ),
    // NIST SP 800-63B §5.2.2: limit failed attempts per account, back off beyond.
    RATE_LIMIT_LOGIN_IDENTIFIER: rate("5/15m").describe(
      "Login attempts per identifier per window before exponential backoff; a success resets.",
    ),
    RATE_LIMIT_LOGIN_ADDRESS: rate("100/15m").describe("Failed logins per client address."),
    RATE_LIMIT_SIGNUP_ADDRESS: rate("20/1h").describe("Sign-ups per client address."),
    TRUST_PROXY: flag(false).describe(
      "Take the client address from the first x-forwarded-for hop (behind a trusted proxy).",
    ),
    REFRESH_REUSE_GRACE: duration("0s")
      .refine((v) => v <= 60_000, "must be at most 60s")
      .describe(
        "How long a rotated refresh token may be presented again (at most 2 more times); 0 is strict.",
      ),
    LOG_LEVEL: z
      .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
      .default("info")
      .describe("Log level; logs are JSON lines on stdout."),
    ACTIVE_SESSIONS_INTERVAL: duration("30s")
      .refine((v) => v >= 1000, "must be at least 1s")
      .describe("How often the active-sessions gauge is recounted."),
    OTEL_EXPORTER_OTLP_ENDPOINT: optionalText
      .refine(
        (url) => url === undefined || /^https?:\/\//.test(url),
        'expected a URL starting with "http://" or "https://"',
      )
      .describe("OTLP/HTTP collector base URL; traces are off while unset."),
    OTEL_SERVICE_NAME: z
      .string()
      .min(1)
      .default("auth-service")
      .describe("service.name of exported traces."),
    CONFIG_FILE: optionalText.describe(
      "A JSON or .env file of these settings; the environment wins over it.",
    ),
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
  })
  // PGlite is a database inside one process: other processes cannot open it.
  .refine((env) => env.WORKERS === 1 || env.DATABASE_URL !== undefined, {
    message: "more than 1 needs DATABASE_URL (the embedded PGlite cannot be shared by processes)",
    path: ["WORKERS"],
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
    verifyCacheSize: e.VERIFY_CACHE_SIZE,
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
    adminPort: e.ADMIN_PORT,
    workers: e.WORKERS,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databasePreparedStatements: e.DATABASE_PREPARED_STATEMENTS,
    activeSessionsIntervalMs: e.ACTIVE_SESSIONS_INTERVAL,
    otlpEndpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: e.OTEL_SERVICE_NAME,
  };
}

/** One setting as `--help` lists it, read from the schema's defaults and descriptions. */
export interface SettingHelp {
  variable: string;
  default: string | undefined;
  meaning: string;
}

/** Every setting of the schema, in its order, with its default and meaning. */
export function describeSettings(): SettingHelp[] {
  const schema = z.toJSONSchema(environmentSchema, { io: "input", unrepresentable: "any" });
  return Object.entries(schema.properties ?? {}).map(([variable, property]) => {
    const facts = typeof property === "object" ? property : {};
    return {
      variable,
      default: facts.default === undefined ? undefined : String(facts.default),
      meaning: facts.description ?? "",
    };
  });
}

/** The settings as a text table for `--help`. */
export function settingsHelp(): string {
  const settings = describeSettings();
  const width = Math.max(...settings.map((setting) => setting.variable.length));
  const lines = settings.map(
    (setting) =>
      `  ${setting.variable.padEnd(width)}  ${setting.meaning} (default: ${setting.default ?? "unset"})`,
  );
  return [
    "Settings (environment variables, or a CONFIG_FILE; durations like 30s, 15m, 30d):",
    ...lines,
  ].join("\n");
}

/** The variables of a settings file: a JSON object, or .env lines for any other name. */
function readConfigFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ConfigError(`Invalid setting CONFIG_FILE: cannot read ${file} (${reason})`);
  }
  if (!file.endsWith(".json")) {
    return parseEnv(text) as Record<string, string>;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ConfigError(`Invalid setting CONFIG_FILE: ${file} is not valid JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`Invalid setting CONFIG_FILE: ${file} must hold one JSON object`);
  }
  return Object.fromEntries(
    Object.entries(parsed).map(([variable, value]) => [
      variable,
      typeof value === "string" ? value : JSON.stringify(value),
    ]),
  );
}

/**
 * Reads the settings from an environment and, when it names one, its CONFIG_FILE.
 * A variable set in the environment wins over the file.
 */
export function loadConfigWithFile(env: Record<string, string | undefined>): Config {
  const setVariables = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ""),
  );
  const file = setVariables.CONFIG_FILE?.trim();
  return loadConfig(file ? { ...readConfigFile(file), ...setVariables } : setVariables);
}

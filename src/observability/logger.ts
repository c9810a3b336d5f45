import { type DestinationStream, type Logger, pino } from "pino";

/**
 * Paths pino censors wherever a log call puts them: request fields, headers and settings
 * that carry passwords, tokens, keys or a database URL with its password.
 */
export const REDACTED_PATHS = [
  "password",
  "*.password",
  "passwordHash",
  "*.passwordHash",
  "accessToken",
  "*.accessToken",
  "refreshToken",
  "*.refreshToken",
  "access_token",
  "*.access_token",
  "refresh_token",
  "*.refresh_token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "jwtSecret",
  "*.jwtSecret",
  "jwtPrivateKeyPem",
  "*.jwtPrivateKeyPem",
  "databaseUrl",
  "*.databaseUrl",
  "JWT_SECRET",
  "*.JWT_SECRET",
  "JWT_PRIVATE_KEY",
  "*.JWT_PRIVATE_KEY",
  "DATABASE_URL",
  "*.DATABASE_URL",
];

export interface LoggerOptions {
  level: string;
  /** Where JSON lines go; stdout when not given. Tests pass a stream they read. */
  destination?: DestinationStream;
}

/** The service's logger: JSON lines, secrets censored by configuration, not by each caller. */
export function createLogger({ level, destination }: LoggerOptions): Logger {
  const options = { level, redact: { paths: REDACTED_PATHS, censor: "[REDACTED]" } };
  return destination ? pino(options, destination) : pino(options);
}

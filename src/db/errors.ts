/** SQLSTATEs and socket errors that mean "the database is not there right now". */
const UNAVAILABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

const UNAVAILABLE_MESSAGES = [
  "Connection terminated",
  "timeout exceeded when trying to connect",
  "Client has encountered a connection error",
];

function errorCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/** True for errors that a retry later may cure: the connection, not the query, failed. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (error instanceof AggregateError) {
    return error.errors.some(isDatabaseUnavailable);
  }
  const code = errorCode(error);
  if (code !== undefined && (UNAVAILABLE_CODES.has(code) || code.startsWith("08"))) {
    return true;
  }
  const message = error instanceof Error ? error.message : "";
  return UNAVAILABLE_MESSAGES.some((text) => message.includes(text));
}

/** The constraint a unique violation (SQLSTATE 23505) hit, or undefined for other errors. */
export function violatedUniqueConstraint(error: unknown): string | undefined {
  if (errorCode(error) !== "23505") {
    return undefined;
  }
  const constraint = (error as { constraint?: unknown }).constraint;
  return typeof constraint === "string" ? constraint : "";
}

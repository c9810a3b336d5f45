import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/observability/logger.js";

function capturedLogger(level = "info") {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      lines.push(JSON.parse(String(chunk)));
      callback();
    },
  });
  return { logger: createLogger({ level, destination }), lines };
}

describe("createLogger", () => {
  it("writes JSON lines at the configured level", () => {
    const { logger, lines } = capturedLogger("warn");
    logger.info("hidden");
    logger.warn({ method: "auth.v1.AuthService/Login" }, "shown");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, msg: "shown", method: expect.any(String) });
  });

  it("censors passwords, tokens, authorization headers and secret settings by configuration", () => {
    const { logger, lines } = capturedLogger();
    const config = loadConfig({
      JWT_SECRET: "a-shared-secret-of-at-least-32-bytes!!",
      DATABASE_URL: "postgres://auth:db-password@db:5432/auth",
    });
    logger.info({
      request: { password: "hunter2-hunter2", refreshToken: "refresh-secret" },
      accessToken: "access-secret",
      headers: { authorization: "Bearer header-secret" },
      config,
      env: { JWT_PRIVATE_KEY: "-----BEGIN PRIVATE KEY-----pem-secret" },
      username: "ada",
    });
    const text = JSON.stringify(lines);
    for (const secret of [
      "hunter2-hunter2",
      "refresh-secret",
      "access-secret",
      "header-secret",
      "a-shared-secret",
      "db-password",
      "pem-secret",
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(lines[0]).toMatchObject({
      username: "ada",
      request: { password: "[REDACTED]" },
      config: { jwtSecret: "[REDACTED]", databaseUrl: "[REDACTED]", port: 50051 },
    });
  });
});

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  describeSettings,
  environmentSchema,
  loadConfigWithFile,
  settingsHelp,
} from "../../src/config.js";

// Settings files on disk: small temporary ones, written here.
const directory = mkdtempSync(path.join(tmpdir(), "auth-config-"));
function file(name: string, text: string): string {
  const target = path.join(directory, name);
  writeFileSync(target, text);
  return target;
}

describe("describeSettings", () => {
  it("describes every variable of the schema, with the schema's defaults", () => {
    const settings = describeSettings();
    expect(settings.map((setting) => setting.variable)).toEqual(
      Object.keys(environmentSchema.shape),
    );
    for (const setting of settings) {
      expect(setting.meaning.length).toBeGreaterThan(5);
    }
    const byName = Object.fromEntries(settings.map((setting) => [setting.variable, setting]));
    expect(byName.PORT?.default).toBe("50051");
    expect(byName.ADMIN_PORT?.default).toBe("9090");
    expect(byName.ACCESS_TOKEN_TTL?.default).toBe("15m");
    expect(byName.DATABASE_URL?.default).toBeUndefined();
    expect(settingsHelp()).toMatch(/^ {2}LOG_LEVEL +Log level.*\(default: info\)$/m);
  });
});

describe("loadConfigWithFile", () => {
  it("reads a JSON file, with the environment winning over it", () => {
    const json = file(
      "settings.json",
      JSON.stringify({ PORT: 7000, HTTP_PORT: "7001", LOG_LEVEL: "debug" }),
    );
    const config = loadConfigWithFile({ CONFIG_FILE: json, HTTP_PORT: "7002", LOG_LEVEL: "" });
    expect(config).toMatchObject({ port: 7000, httpPort: 7002, logLevel: "debug" });
  });

  it("reads a .env file", () => {
    const env = file("settings.env", "# comment\nADMIN_PORT=9191\nJWT_ISSUER='https://auth'\n");
    expect(loadConfigWithFile({ CONFIG_FILE: env })).toMatchObject({
      adminPort: 9191,
      jwtIssuer: "https://auth",
    });
  });

  it("stops with one line for a missing file, bad JSON, or a bad value in the file", () => {
    const cases: [Record<string, string>, RegExp][] = [
      [
        { CONFIG_FILE: path.join(directory, "absent.json") },
        /^Invalid setting CONFIG_FILE: .*ENOENT/,
      ],
      [{ CONFIG_FILE: file("broken.json", "{") }, /^Invalid setting CONFIG_FILE: .*not valid JSON/],
      [
        { CONFIG_FILE: file("list.json", "[1]") },
        /^Invalid setting CONFIG_FILE: .*one JSON object/,
      ],
      [{ CONFIG_FILE: file("bad.env", "ADMIN_PORT=70000\n") }, /^Invalid setting ADMIN_PORT: /],
    ];
    for (const [env, message] of cases) {
      let error: unknown;
      try {
        loadConfigWithFile(env);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain("\n");
    }
  });

  it("reads the observability settings", () => {
    const config = loadConfigWithFile({
      OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318",
      ACTIVE_SESSIONS_INTERVAL: "1m",
      DATABASE_POOL_SIZE: "25",
    });
    expect(config).toMatchObject({
      otlpEndpoint: "http://127.0.0.1:4318",
      serviceName: "auth-service",
      activeSessionsIntervalMs: 60_000,
      databasePoolSize: 25,
      adminPort: 9090,
    });
    expect(() => loadConfigWithFile({ OTEL_EXPORTER_OTLP_ENDPOINT: "collector:4318" })).toThrow(
      /^Invalid setting OTEL_EXPORTER_OTLP_ENDPOINT: /,
    );
  });
});

import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { describeSettings } from "../../src/config.js";
import { grpcFailure, newUser, signUpAndLogin, startTestServer } from "./harness.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const directories: string[] = [];

afterEach(async () => {
  for (const directory of directories.splice(0)) {
    await rm(directory, { recursive: true, force: true });
  }
});

async function dataDirectory(): Promise<string> {
  const directory = await mkdtemp(path.join(tmpdir(), "auth-cli-"));
  directories.push(directory);
  return directory;
}

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `auth-service …` as a real process (src/main.ts through tsx), bounded to 60 s. */
function cli(args: string[], environment: Record<string, string> = {}): Promise<CliRun> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ...(process.env.TEST_DATABASE_URL ? { DATABASE_URL: process.env.TEST_DATABASE_URL } : {}),
      ...environment,
    },
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 60_000,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

/** A server on a data directory (PGlite files there, or PostgreSQL) with cheap argon2. */
function serverOn(dataDir: string) {
  return startTestServer({ DATA_DIR: dataDir });
}

describe("auth-service --help", () => {
  it("lists the commands and every setting with its default and meaning", async () => {
    const run = await cli(["--help"]);
    expect(run.code).toBe(0);
    for (const command of ["serve", "migrate", "keys", "users", "sessions"]) {
      expect(run.stdout).toMatch(new RegExp(`^  ${command}\\b`, "m"));
    }
    const lines = run.stdout.split("\n");
    for (const setting of describeSettings()) {
      expect(setting.meaning).not.toBe("");
      const line = lines.find((text) => text.startsWith(`  ${setting.variable} `));
      expect(line).toContain(`${setting.meaning} (default: ${setting.default ?? "unset"})`);
    }
  });

  it("explains each command", async () => {
    const runs = await Promise.all([
      cli(["users", "disable", "--help"]),
      cli(["sessions", "revoke", "--help"]),
      cli(["keys", "--help"]),
      cli(["serve", "--help"]),
    ]);
    expect(runs.map((run) => run.code)).toEqual([0, 0, 0, 0]);
    expect(runs[0]?.stdout).toMatch(/Usage: auth-service users disable \[options\] <identifier>/);
    expect(runs[1]?.stdout).toMatch(/Usage: auth-service sessions revoke \[options\] <user>/);
    expect(runs[2]?.stdout).toMatch(/list[\s\S]*generate[\s\S]*rotate[\s\S]*remove <kid>/);
    expect(runs[3]?.stdout).toContain("ADMIN_PORT");
  });

  it("refuses bad usage and bad settings with exit code 2 and one clear line", async () => {
    const [unknown, missing, setting] = await Promise.all([
      cli(["frobnicate"]),
      cli(["users", "disable"]),
      cli(["sessions", "revoke", "ada"], { ARGON2_TIME_COST: "zero" }),
    ]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing required argument 'identifier'/);
    expect(setting.code).toBe(2);
    expect(setting.stderr.trim().split("\n")).toEqual([
      expect.stringMatching(/^Invalid setting ARGON2_TIME_COST: /),
    ]);
  });
});

describe("auth-service users and sessions", () => {
  it("disables a user (no login, sessions revoked) and enables them again", async () => {
    const dataDir = await dataDirectory();
    let server = await serverOn(dataDir);
    const { input, user, tokens } = await signUpAndLogin(server);
    await server.close();

    const disabled = await cli(["users", "disable", input.username], { DATA_DIR: dataDir });
    expect(disabled.stderr).toBe("");
    expect(disabled.code).toBe(0);
    expect(disabled.stdout.trim()).toBe(
      `disabled ${input.username} (${user.id}); 1 session(s) revoked`,
    );

    server = await serverOn(dataDir);
    const login = await grpcFailure(
      server.grpc.login({ identifier: input.username, password: input.password }),
    );
    expect(login.reason).toBe("INVALID_CREDENTIALS");
    const refresh = await grpcFailure(server.grpc.refresh({ refreshToken: tokens.refreshToken }));
    expect(refresh.reason).toBe("SESSION_REVOKED");
    const verify = await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }));
    expect(verify.reason).toBe("SESSION_REVOKED");
    await server.close();

    const enabled = await cli(["users", "enable", input.email.toUpperCase()], {
      DATA_DIR: dataDir,
    });
    expect(enabled.code).toBe(0);
    expect(enabled.stdout.trim()).toBe(`enabled ${input.username} (${user.id})`);

    server = await serverOn(dataDir);
    const again = await server.grpc.login({ identifier: input.username, password: input.password });
    expect(again.user?.id).toBe(user.id);
    await server.close();
  });

  it("revokes every session of a user given by id, and the user can still log in", async () => {
    const dataDir = await dataDirectory();
    let server = await serverOn(dataDir);
    const { input, user, tokens } = await signUpAndLogin(server);
    const second = await server.grpc.login({ identifier: input.email, password: input.password });
    await server.close();

    const revoked = await cli(["sessions", "revoke", user.id], { DATA_DIR: dataDir });
    expect(revoked.code).toBe(0);
    expect(revoked.stdout.trim()).toBe(`revoked 2 session(s) of ${input.username} (${user.id})`);

    server = await serverOn(dataDir);
    for (const refreshToken of [tokens.refreshToken, second.tokens?.refreshToken ?? ""]) {
      expect((await grpcFailure(server.grpc.refresh({ refreshToken }))).reason).toBe(
        "SESSION_REVOKED",
      );
    }
    const login = await server.grpc.login({ identifier: input.username, password: input.password });
    expect(login.tokens?.refreshToken).toBeTruthy();
    await server.close();
  });

  it("answers an unknown user with exit code 1, and keys under HS256 with exit code 2", async () => {
    const dataDir = await dataDirectory();
    const nobody = newUser().username;
    const [unknown, keys, migrate] = await Promise.all([
      cli(["users", "disable", nobody], { DATA_DIR: dataDir }),
      cli(["keys", "list"], { DATA_DIR: dataDir, JWT_SECRET: "s".repeat(32) }),
      cli(["migrate"], { DATA_DIR: `${dataDir}/migrate` }),
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr.trim()).toBe(
      `auth-service: no user matches "${nobody}" (give a username, email, phone number or id)`,
    );
    expect(keys.code).toBe(2);
    expect(keys.stderr.trim()).toBe("keys: HS256 (JWT_SECRET) has no key store");
    expect(migrate.code).toBe(0);
    expect(migrate.stdout).toMatch(/^(applied \d+ migration\(s\)|database is up to date)/);
  });
});

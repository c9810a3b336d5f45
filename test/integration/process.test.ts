import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { connectGrpc, grpcFailure, newUser, spawnService } from "./harness.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const children: ChildProcess[] = [];
const directories: string[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    child.kill("SIGKILL");
  }
  for (const directory of directories.splice(0)) {
    await rm(directory, { recursive: true, force: true });
  }
});

/** Starts `src/main.ts` as a real process in a data directory of its own. */
async function startProcess(environment: Record<string, string>) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "auth-process-"));
  directories.push(dataDir);
  return spawnService(
    {
      DATA_DIR: dataDir,
      // Test files share 127.0.0.1 (and, on PostgreSQL, its counters).
      RATE_LIMIT_SIGNUP_ADDRESS: "1000000/1h",
      RATE_LIMIT_LOGIN_ADDRESS: "1000000/1h",
      ...environment,
    },
    (child) => children.push(child),
  );
}

describe("the auth-service process", () => {
  it("finishes an in-flight call on SIGTERM, refuses new ones and exits 0", async () => {
    // A costly hash makes the Login last long enough to be in flight at SIGTERM.
    const service = await startProcess({ ARGON2_TIME_COST: "40", ARGON2_MEMORY_KIB: "8192" });
    const { client, close } = connectGrpc(service.address);
    const input = newUser();
    await client.signUp(input);
    const login = client.login({ identifier: input.username, password: input.password });
    await new Promise((resolve) => setTimeout(resolve, 100));
    service.child.kill("SIGTERM");
    await expect(login).resolves.toMatchObject({ user: { username: input.username } });
    expect(await service.exited).toBe(0);
    expect(service.lines.map((line) => JSON.parse(line).msg)).toContain("stopped");
    close();

    const late = connectGrpc(service.address);
    const refused = await grpcFailure(late.client.getJwks({}));
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    late.close();
  });

  it("under load, SIGTERM lets every in-flight call finish, refuses new ones and exits 0", async () => {
    const service = await startProcess({
      ARGON2_TIME_COST: "40",
      ARGON2_MEMORY_KIB: "8192",
    });
    const { client, close } = connectGrpc(service.address);
    const users = Array.from({ length: 12 }, () => newUser());
    await Promise.all(users.map((input) => client.signUp(input)));
    // Twelve logins queue behind the hasher (two at a time): most are in flight at SIGTERM.
    const inFlight = users.map((input, i) =>
      client
        .login({ identifier: input.username, password: i % 3 ? input.password : "wrong!!!" })
        .then(
          () => "accepted",
          (error: grpc.ServiceError) => error.code,
        ),
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    service.child.kill("SIGTERM");
    await expect
      .poll(() => service.lines.some((line) => JSON.parse(line).msg === "shutting down"))
      .toBe(true);
    const late = connectGrpc(service.address);
    const refused = await grpcFailure(late.client.getJwks({}));
    expect(refused.code).toBe(grpc.status.UNAVAILABLE);
    late.close();
    const outcomes = await Promise.all(inFlight);
    expect(outcomes.filter((outcome) => outcome === "accepted")).toHaveLength(8);
    expect(outcomes.filter((outcome) => outcome === grpc.status.UNAUTHENTICATED)).toHaveLength(4);
    expect(await service.exited).toBe(0);
    close();
  });

  it("refuses to start on a bad setting with one clear line and exit code 2", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, ACCESS_TOKEN_TTL: "soon" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let stderr = "";
    child.stderr?.on("data", (chunk) => {
      stderr += chunk;
    });
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(2);
    expect(stderr.trim().split("\n")).toHaveLength(1);
    expect(stderr).toMatch(/^Invalid setting ACCESS_TOKEN_TTL: /);
  });
});

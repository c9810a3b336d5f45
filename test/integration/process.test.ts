import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { connectGrpc, grpcFailure, newUser } from "./harness.js";

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

/** Starts `src/main.ts` as a real process; resolves once it logs that it listens. */
async function startProcess(environment: Record<string, string>) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "auth-process-"));
  directories.push(dataDir);
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "serve"], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOST: "127.0.0.1",
      PORT: "0",
      HTTP_PORT: "0",
      ADMIN_PORT: "0",
      DATA_DIR: dataDir,
      ...(process.env.TEST_DATABASE_URL ? { DATABASE_URL: process.env.TEST_DATABASE_URL } : {}),
      ...environment,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const lines: string[] = [];
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const address = await new Promise<string>((resolve, reject) => {
    let buffered = "";
    child.stdout?.on("data", (chunk) => {
      buffered += chunk;
      const parts = buffered.split("\n");
      buffered = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        const entry = JSON.parse(line) as { msg: string; grpc?: string };
        if (entry.msg === "auth-service listening" && entry.grpc) {
          resolve(entry.grpc);
        }
      }
    });
    exited.then((code) => reject(new Error(`exited with ${code} before listening: ${stderr}`)));
  });
  return { child, address, lines, exited, stderr: () => stderr };
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

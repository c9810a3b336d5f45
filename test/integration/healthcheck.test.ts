import { spawn } from "node:child_process";
import net from "node:net";
import { describe, expect, it } from "vitest";
import { startTestServer } from "./harness.js";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Runs the container's HEALTHCHECK script against PORT on loopback. */
function healthcheck(port: number): Promise<{ code: number | null; stdout: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/healthcheck.ts"], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, PORT: String(port) },
    stdio: ["ignore", "pipe", "inherit"],
    timeout: 30_000,
  });
  let stdout = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout })));
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("the healthcheck script", () => {
  it("exits 0 while the gRPC health service says SERVING, 1 when not or when nothing answers", async () => {
    const server = await startTestServer();
    const port = Number(server.grpcAddress.split(":")[1]);
    const serving = await healthcheck(port);
    expect(serving).toEqual({ code: 0, stdout: "SERVING\n" });
    await server.close();

    const refused = await healthcheck(await closedPort());
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^error: /);
  });
});

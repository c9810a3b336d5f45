/** The service as a process of its own, started and stopped the same way by every benchmark. */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";

export const ROOT = new URL("..", import.meta.url).pathname;

/** The first stdout line of a child that matches, or failure when it exits first. */
export function waitForLine(
  child: ChildProcess,
  matches: (line: string) => boolean,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString();
      for (const line of buffered.split("\n")) {
        if (matches(line)) {
          child.stdout?.off("data", onData);
          child.stdout?.resume();
          resolve(line);
          return;
        }
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code) => reject(new Error(`process exited with ${code}`)));
  });
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) {
    return;
  }
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  await exited;
}

export interface ServiceProcess {
  child: ChildProcess;
  /** The gRPC port. */
  port: number;
}

/**
 * Builds the service and starts it as deployed (`node dist/src/main.js serve`; tsx's loader
 * alone would add ~90 MiB of RSS) on free loopback ports, with the per-address rate limits
 * lifted: every bench call comes from 127.0.0.1. `environment` adds to and overrides that.
 */
export async function startBuiltService(
  environment: Record<string, string>,
  nodeOptions: string[] = [],
): Promise<ServiceProcess> {
  execFileSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
  const child = spawn(process.execPath, [...nodeOptions, "dist/src/main.js", "serve"], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: "0",
      HTTP_PORT: "0",
      ADMIN_PORT: "0",
      LOG_LEVEL: "info",
      RATE_LIMIT_LOGIN_IDENTIFIER: "1000000000/1m",
      RATE_LIMIT_LOGIN_ADDRESS: "1000000000/1m",
      RATE_LIMIT_SIGNUP_ADDRESS: "1000000000/1m",
      ...environment,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const line = await waitForLine(child, (text) => text.includes("auth-service listening"));
  const { grpc } = JSON.parse(line) as { grpc: string };
  return { child, port: Number(grpc.split(":").pop()) };
}

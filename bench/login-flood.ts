/**
 * Peak memory under a Login flood: starts the real service (default argon2id cost; the
 * PostgreSQL of DATABASE_URL when set, else the embedded database), sends 1,000 Logins at once over one gRPC connection, and reads the process's peak
 * resident set (VmHWM) from /proc. Runs twice: with the default hash queue (HASH_QUEUE_MAX=64)
 * and with a queue too long to ever refuse, to show what the bound saves.
 *
 *   npm run bench:login-flood
 *
 * Rate limits are raised so that every call reaches the hasher: this measures the queue.
 * Half the calls name a real user, half an unknown one (a dummy verify costs the same).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { connectGrpc, newUser, spawnService } from "../test/integration/harness.js";

const CALLS = 1_000;
const grpcStatus = grpc.status as unknown as Record<number, string>;

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kib / 1024;
}

async function flood(hashQueueMax: string) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "auth-bench-"));
  const { child, address } = await spawnService({
    DATA_DIR: dataDir,
    ...(process.env.DATABASE_URL ? { DATABASE_URL: process.env.DATABASE_URL } : {}),
    HASH_QUEUE_MAX: hashQueueMax,
    RATE_LIMIT_LOGIN_IDENTIFIER: "1000000/1m",
    RATE_LIMIT_LOGIN_ADDRESS: "1000000/1m",
    RATE_LIMIT_SIGNUP_ADDRESS: "1000000/1m",
  });
  try {
    const { client, close } = connectGrpc(address);
    const user = newUser();
    await client.signUp(user);
    const baseline = peakRssMiB(child.pid ?? 0);
    const started = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: CALLS }, (_, i) =>
        client
          .login({
            identifier: i % 2 ? user.username : `nobody_${i}`,
            password: i % 2 ? user.password : "not the password",
          })
          .then(
            () => "OK",
            (error: grpc.ServiceError) => grpcStatus[error.code] ?? String(error.code),
          ),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    const counts: Record<string, number> = {};
    for (const outcome of outcomes) {
      counts[outcome] = (counts[outcome] ?? 0) + 1;
    }
    console.log(
      JSON.stringify({
        hashQueueMax,
        calls: CALLS,
        seconds: Number(seconds.toFixed(1)),
        rssBeforeMiB: Number(baseline.toFixed(0)),
        peakRssMiB: Number(peakRssMiB(child.pid ?? 0).toFixed(0)),
        outcomes: counts,
      }),
    );
    close();
  } finally {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
    await rm(dataDir, { recursive: true, force: true });
  }
}

for (const hashQueueMax of ["64", "100000"]) {
  await flood(hashQueueMax);
}

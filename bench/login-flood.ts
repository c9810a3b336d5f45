/**
 * Peak memory under a Login flood: starts the built service (default argon2id cost; the
 * PostgreSQL of DATABASE_URL when set, else the embedded database), sends 1,000 Logins at
 * once over one gRPC connection, and reads the process's peak resident set (VmHWM) from
 * /proc. Runs twice: with the default hash queue (HASH_QUEUE_MAX=64) and with a queue too
 * long to ever refuse, to show what the bound saves.
 *
 *   npm run bench:login-flood
 *
 * Rate limits are lifted so that every call reaches the hasher: this measures the queue.
 * Half the calls name a real user, half an unknown one (a dummy verify costs the same).
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { connectGrpc, newUser } from "../test/integration/harness.js";
import { startBuiltService, stopProcess } from "./service-process.js";

const CALLS = 1_000;
const grpcStatus = grpc.status as unknown as Record<number, string>;

function peakRssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kib / 1024;
}

async function flood(hashQueueMax: string) {
  const dataDir = await mkdtemp(path.join(tmpdir(), "auth-bench-"));
  const { child, port } = await startBuiltService({
    DATA_DIR: dataDir,
    DATABASE_URL: process.env.DATABASE_URL ?? "",
    HASH_QUEUE_MAX: hashQueueMax,
  });
  try {
    const { client, close } = connectGrpc(`127.0.0.1:${port}`);
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
    await stopProcess(child);
    await rm(dataDir, { recursive: true, force: true });
  }
}

for (const hashQueueMax of ["64", "100000"]) {
  await flood(hashQueueMax);
}

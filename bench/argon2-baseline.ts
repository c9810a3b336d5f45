/**
 * Raw argon2id verifies or hashes per second with the service's hasher at the configured
 * cost (ARGON2_* settings), `concurrency` calls in flight, for a bounded time.
 * Input: {operation, concurrency, durationMs} as argv[2]; output: one JSON result.
 */

import { createArgon2idHasher } from "../src/accounts/password-hasher.js";
import { loadConfig } from "../src/config.js";
import { quantile } from "./grpc-frames.js";

interface Argon2Job {
  operation: "verify" | "hash";
  concurrency: number;
  durationMs: number;
}

async function run(job: Argon2Job) {
  const hasher = createArgon2idHasher(loadConfig(process.env).argon2);
  const password = "correct horse battery staple 7";
  const stored = await hasher.hash(password);
  const latencies: number[] = [];
  const cpuStart = process.cpuUsage();
  const begin = performance.now();
  const deadline = begin + job.durationMs;
  const worker = async () => {
    while (performance.now() < deadline) {
      const started = performance.now();
      if (job.operation === "verify") {
        await hasher.verify(stored, password);
      } else {
        await hasher.hash(password);
      }
      latencies.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, worker));
  const seconds = (performance.now() - begin) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    errors: 0,
    seconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    cpuCores: (cpu.user + cpu.system) / 1e6 / seconds,
  };
}

run(JSON.parse(process.argv[2] as string) as Argon2Job).then((result) =>
  process.stdout.write(JSON.stringify(result)),
);

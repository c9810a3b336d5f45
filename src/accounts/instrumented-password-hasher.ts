import { type Tracer, trace } from "@opentelemetry/api";
import type { ServiceMetrics } from "../observability/metrics.js";
import type { PasswordHasher } from "./password-hasher.js";

export interface InstrumentedHasherOptions {
  metrics: Pick<ServiceMetrics, "argon2QueueDepth" | "argon2DurationSeconds">;
  /** Undefined when tracing is off. */
  tracer: Tracer | undefined;
}

/**
 * A hasher that counts its hashes in flight (the argon2 queue depth: each waits for a
 * libuv worker thread, then runs) and times them, with an `argon2.hash`/`argon2.verify`
 * span under the current RPC's span when tracing is on. Other methods pass through.
 */
export function instrumentPasswordHasher(
  hasher: PasswordHasher,
  { metrics, tracer }: InstrumentedHasherOptions,
): PasswordHasher {
  async function measured<T>(operation: "hash" | "verify", run: () => Promise<T>): Promise<T> {
    metrics.argon2QueueDepth.inc();
    const stopTimer = metrics.argon2DurationSeconds.startTimer({ operation });
    const span =
      tracer && trace.getActiveSpan() ? tracer.startSpan(`argon2.${operation}`) : undefined;
    try {
      return await run();
    } finally {
      metrics.argon2QueueDepth.dec();
      stopTimer();
      span?.end();
    }
  }
  return {
    ...hasher,
    hash: (password, signal) => measured("hash", () => hasher.hash(password, signal)),
    verify: (passwordHash, password, signal) =>
      measured("verify", () => hasher.verify(passwordHash, password, signal)),
    verifyDummy: (password, signal) =>
      measured("verify", () => hasher.verifyDummy(password, signal)),
  };
}

import { randomBytes } from "node:crypto";
import { hash, parseOptions, verify } from "@node-rs/argon2";
import PQueue from "p-queue";
import { AuthError } from "../auth-error.js";
import type { Argon2Params } from "../config.js";

/**
 * @node-rs/argon2's `Algorithm` is a `const enum` that its runtime does not export:
 * these are its values (argon2id = 2, version 0x13 = 1).
 */
const ARGON2ID = 2;
const VERSION_0X13 = 1;

/** Hashes and checks passwords; injected, so tests can use cheap parameters. */
export interface PasswordHasher {
  /** An argon2id PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`). */
  hash(password: string, signal?: AbortSignal): Promise<string>;
  /** False for a wrong password and for a hash that cannot be parsed. */
  verify(passwordHash: string, password: string, signal?: AbortSignal): Promise<boolean>;
  /** Spends the time of one verify, for an identifier with no user behind it. */
  verifyDummy(password: string, signal?: AbortSignal): Promise<void>;
  /** True when the hash was made with other parameters than the configured ones. */
  needsRehash(passwordHash: string): boolean;
}

/**
 * argon2id through @node-rs/argon2, which runs on libuv's thread pool (off the event
 * loop) and measured ~1.4-2.4x the `argon2` package's verifies/s on this hardware.
 */
export function createArgon2idHasher(params: Argon2Params): PasswordHasher {
  const options = {
    algorithm: ARGON2ID,
    version: VERSION_0X13,
    memoryCost: params.memoryKib,
    timeCost: params.timeCost,
    parallelism: params.parallelism,
  };
  // Made once, with the configured cost, so an unknown identifier costs what a wrong password does.
  let dummyHash: Promise<string> | undefined;

  const hasher: PasswordHasher = {
    hash: (password) => hash(password, options),
    async verify(passwordHash, password) {
      try {
        return await verify(passwordHash, password);
      } catch {
        return false;
      }
    },
    async verifyDummy(password) {
      dummyHash ??= hash(randomBytes(32), options);
      await hasher.verify(await dummyHash, password);
    },
    needsRehash(passwordHash) {
      try {
        const used = parseOptions(passwordHash);
        return (
          used.algorithm !== ARGON2ID ||
          used.version !== VERSION_0X13 ||
          used.memoryCost !== params.memoryKib ||
          used.timeCost !== params.timeCost ||
          used.parallelism !== params.parallelism
        );
      } catch {
        return true;
      }
    },
  };
  return hasher;
}

export interface HashQueueOptions {
  /** Hashes computed at once; about one per core, since each one takes a core. */
  concurrency: number;
  /** Calls that may wait for a turn; beyond, RATE_LIMITED at once. */
  maxQueued: number;
}

/** What a refused call is told to wait: about the time the queue takes to drain. */
export const QUEUE_FULL_RETRY_MS = 1_000;

/**
 * Runs another hasher's work through a bounded queue, so a flood of calls costs neither
 * unbounded memory (each argon2id hash holds its memory cost) nor unbounded latency.
 * A call whose signal aborts (client gone, deadline passed) while it waits is dropped
 * from the queue and never hashed.
 */
export function createQueuedHasher(
  hasher: PasswordHasher,
  options: HashQueueOptions,
): PasswordHasher {
  const queue = new PQueue({ concurrency: options.concurrency });

  function run<T>(work: () => Promise<T>, signal: AbortSignal | undefined): Promise<T> {
    if (signal?.aborted) {
      return Promise.reject(signal.reason);
    }
    if (queue.pending >= options.concurrency && queue.size >= options.maxQueued) {
      return Promise.reject(
        new AuthError("RATE_LIMITED", "the service is busy; retry later", {
          retryDelayMs: QUEUE_FULL_RETRY_MS,
        }),
      );
    }
    return queue.add(
      () => {
        signal?.throwIfAborted();
        return work();
      },
      { signal },
    );
  }

  return {
    hash: (password, signal) => run(() => hasher.hash(password), signal),
    verify: (passwordHash, password, signal) =>
      run(() => hasher.verify(passwordHash, password), signal),
    verifyDummy: (password, signal) => run(() => hasher.verifyDummy(password), signal),
    needsRehash: (passwordHash) => hasher.needsRehash(passwordHash),
  };
}

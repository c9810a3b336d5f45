import { describe, expect, it } from "vitest";
import { createQueuedHasher, type PasswordHasher } from "../../src/accounts/password-hasher.js";
import { AuthError } from "../../src/auth-error.js";

/** A hasher whose every call waits until the test lets it finish; it records what it hashed. */
function manualHasher() {
  const started: string[] = [];
  const finishers: (() => void)[] = [];
  const work = (password: string) =>
    new Promise<string>((resolve) => {
      started.push(password);
      finishers.push(() => resolve(`hash of ${password}`));
    });
  const hasher: PasswordHasher = {
    hash: work,
    verify: async (_hash, password) => (await work(password)) !== "",
    verifyDummy: async (password) => {
      await work(password);
    },
    needsRehash: () => false,
  };
  const finishOne = async () => {
    finishers.shift()?.();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { hasher, started, finishOne };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("createQueuedHasher", () => {
  it("runs at most `concurrency` at once and queues the rest in order", async () => {
    const { hasher, started, finishOne } = manualHasher();
    const queued = createQueuedHasher(hasher, { concurrency: 2, maxQueued: 10 });
    const results = ["a", "b", "c", "d"].map((password) => queued.hash(password));
    await tick();
    expect(started).toEqual(["a", "b"]);
    await finishOne();
    expect(started).toEqual(["a", "b", "c"]);
    await finishOne();
    await finishOne();
    await finishOne();
    expect(await Promise.all(results)).toEqual([
      "hash of a",
      "hash of b",
      "hash of c",
      "hash of d",
    ]);
  });

  it("refuses at once with RATE_LIMITED and a retry delay when the queue is full", async () => {
    const { hasher, finishOne } = manualHasher();
    const queued = createQueuedHasher(hasher, { concurrency: 1, maxQueued: 1 });
    const running = queued.hash("a");
    const waiting = queued.verify("x", "b");
    await tick();
    const refused = await queued.verifyDummy("c").catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(AuthError);
    expect(refused).toMatchObject({ reason: "RATE_LIMITED", retryDelayMs: expect.any(Number) });
    await finishOne();
    await finishOne();
    await expect(running).resolves.toBe("hash of a");
    await expect(waiting).resolves.toBe(true);
  });

  it("drops a call whose signal aborts while it waits, without hashing it", async () => {
    const { hasher, started, finishOne } = manualHasher();
    const queued = createQueuedHasher(hasher, { concurrency: 1, maxQueued: 1 });
    const running = queued.hash("a");
    const controller = new AbortController();
    const waiting = queued.hash("deadline passed", controller.signal);
    controller.abort(new Error("deadline"));
    await expect(waiting).rejects.toThrow("deadline");
    // Its place in the queue is free again.
    const next = queued.hash("c");
    await finishOne();
    await finishOne();
    await expect(running).resolves.toBe("hash of a");
    await expect(next).resolves.toBe("hash of c");
    expect(started).toEqual(["a", "c"]);
  });

  it("does not hash a call whose signal has already aborted", async () => {
    const { hasher, started } = manualHasher();
    const queued = createQueuedHasher(hasher, { concurrency: 1, maxQueued: 1 });
    await expect(queued.hash("late", AbortSignal.abort(new Error("gone")))).rejects.toThrow("gone");
    expect(started).toEqual([]);
  });
});

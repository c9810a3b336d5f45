import { hash as argon2Hash } from "@node-rs/argon2";
import { describe, expect, it } from "vitest";
import { createArgon2idHasher } from "../../src/accounts/password-hasher.js";

const CHEAP = { memoryKib: 1024, timeCost: 1, parallelism: 1 };
const hasher = createArgon2idHasher(CHEAP);

describe("createArgon2idHasher", () => {
  it("hashes to an argon2id v19 PHC string with the configured parameters", async () => {
    const hash = await hasher.hash("correct horse battery staple");
    expect(hash.startsWith("$argon2id$v=19$")).toBe(true);
    expect(hash).toContain("m=1024,t=1,p=1");
    expect(hash).not.toContain("correct horse");
  });

  it("salts every hash", async () => {
    const [first, second] = await Promise.all([
      hasher.hash("same password"),
      hasher.hash("same password"),
    ]);
    expect(first).not.toBe(second);
  });

  it("verifies the right password and refuses a wrong one", async () => {
    const hash = await hasher.hash("correct horse battery staple");
    expect(await hasher.verify(hash, "correct horse battery staple")).toBe(true);
    expect(await hasher.verify(hash, "correct horse battery stapl")).toBe(false);
    expect(await hasher.verify(hash, "Correct horse battery staple")).toBe(false);
    expect(await hasher.verify(hash, "")).toBe(false);
  });

  it("uses the password exactly: whitespace and non-ASCII matter", async () => {
    const hash = await hasher.hash(" p\u00e4ss\tword\u{1F511} ");
    expect(await hasher.verify(hash, " p\u00e4ss\tword\u{1F511} ")).toBe(true);
    expect(await hasher.verify(hash, "p\u00e4ss\tword\u{1F511}")).toBe(false);
    expect(await hasher.verify(hash, " pa\u0308ss\tword\u{1F511} ")).toBe(false);
  });

  it.each([
    ["garbage", "not a hash"],
    ["empty", ""],
    ["a truncated PHC string", "$argon2id$v=19$m=1024,t=1,p=1$"],
    ["another scheme", "$2b$10$abcdefghijklmnopqrstuuCjfCzZ1Lx0YVhr3H.Txo6ZUc3nXuQ2u"],
  ])("answers false (never throws) for a malformed hash: %s", async (_label, hash) => {
    await expect(hasher.verify(hash, "whatever")).resolves.toBe(false);
  });

  it("needs no rehash for a hash made with the same parameters", async () => {
    const hash = await hasher.hash("correct horse battery staple");
    expect(hasher.needsRehash(hash)).toBe(false);
    expect(createArgon2idHasher({ ...CHEAP }).needsRehash(hash)).toBe(false);
  });

  it.each([
    ["memory", { ...CHEAP, memoryKib: 2048 }],
    ["time cost", { ...CHEAP, timeCost: 2 }],
    ["parallelism", { ...CHEAP, parallelism: 2 }],
  ])("needs a rehash for a hash made with another %s", async (_label, params) => {
    const oldHash = await createArgon2idHasher(params).hash("correct horse battery staple");
    expect(hasher.needsRehash(oldHash)).toBe(true);
    // Still verifiable, so the next successful login can replace it.
    expect(await hasher.verify(oldHash, "correct horse battery staple")).toBe(true);
  });

  it("needs a rehash for an argon2i hash with the same costs", async () => {
    // @node-rs/argon2's Algorithm.Argon2i; its const enum is not exported at runtime.
    const argon2i = await argon2Hash("correct horse", {
      algorithm: 1,
      memoryCost: CHEAP.memoryKib,
      timeCost: CHEAP.timeCost,
      parallelism: CHEAP.parallelism,
    });
    expect(argon2i.startsWith("$argon2i$")).toBe(true);
    expect(hasher.needsRehash(argon2i)).toBe(true);
  });

  it.each(["garbage", "", "$2b$10$abcdefghijklmnopqrstuuCjfCzZ1Lx0YVhr3H.Txo6ZUc3nXuQ2u"])(
    "needs a rehash for a hash it cannot parse: %j",
    (hash) => {
      expect(hasher.needsRehash(hash)).toBe(true);
    },
  );

  it("verifyDummy resolves for any password", async () => {
    await expect(hasher.verifyDummy("anything")).resolves.toBeUndefined();
    await expect(hasher.verifyDummy("")).resolves.toBeUndefined();
  });
});

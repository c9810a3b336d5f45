import { createPublicKey } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config.js";
import { createKeyStore, keyStoreDirectory, loadKeySet } from "../../src/tokens/key-store.js";
import { generateEs256Pem, signingKeyFromPem } from "../../src/tokens/signing-keys.js";

let directory: string;
beforeEach(async () => {
  directory = await mkdtemp(path.join(tmpdir(), "auth-keys-"));
});
afterEach(async () => {
  await rm(directory, { recursive: true, force: true });
});

const none = { jwtSecret: undefined, jwtPrivateKeyPem: undefined, jwtPrivateKeyFile: undefined };

describe("createKeyStore", () => {
  it("generates a first key that signs, then keys that only verify until rotated", async () => {
    const store = createKeyStore(path.join(directory, "keys"));
    const first = await store.generate();
    const second = await store.generate();
    expect(first.active).toBe(true);
    expect(second.active).toBe(false);
    expect((await stat(path.join(store.directory, first.file))).mode & 0o777).toBe(0o600);
    expect((await store.list()).map((key) => [key.kid, key.active])).toEqual([
      [first.kid, true],
      [second.kid, false],
    ]);

    const { active, previous } = await store.rotate();
    expect(active.kid).toBe(second.kid);
    expect(previous?.kid).toBe(first.kid);
    const keys = await store.load();
    expect(keys.signer.kid).toBe(second.kid);
    expect(keys.keys.map((key) => key.kid).sort()).toEqual([first.kid, second.kid].sort());
    expect(keys.find(first.kid)).toBeDefined();
  });

  it("generates a new key to rotate to when none is waiting", async () => {
    const store = createKeyStore(directory);
    const first = await store.generate();
    const { active } = await store.rotate();
    expect(active.kid).not.toBe(first.kid);
    expect((await readFile(path.join(directory, "active"), "utf8")).trim()).toBe(active.kid);
    expect(await store.list()).toHaveLength(2);
  });

  it("removes a retired key but never the active one", async () => {
    const store = createKeyStore(directory);
    const first = await store.generate();
    await expect(store.remove(first.kid)).rejects.toBeInstanceOf(ConfigError);
    await store.rotate();
    await store.remove(first.kid);
    expect((await store.list()).map((key) => key.kid)).not.toContain(first.kid);
    await expect(store.remove("no-such-kid")).rejects.toBeInstanceOf(ConfigError);
  });

  it("without an active file, signs with the private key whose name sorts last", async () => {
    const older = generateEs256Pem();
    const newer = generateEs256Pem();
    await writeFile(path.join(directory, "2026-01.pem"), older);
    await writeFile(path.join(directory, "2026-06.pem"), newer);
    const retired = createPublicKey(generateEs256Pem()).export({ format: "pem", type: "spki" });
    await writeFile(path.join(directory, "2027-public.pem"), retired);
    const keys = await createKeyStore(directory).load();
    expect(keys.signer.kid).toBe(signingKeyFromPem(newer, "newer").kid);
    expect(keys.keys).toHaveLength(3);
  });

  it("refuses a directory with no private key, or with a key that is not P-256", async () => {
    const publicOnly = createPublicKey(generateEs256Pem()).export({ format: "pem", type: "spki" });
    await writeFile(path.join(directory, "a.pem"), publicOnly);
    await expect(createKeyStore(directory).load()).rejects.toBeInstanceOf(ConfigError);
    await writeFile(path.join(directory, "b.pem"), "not a key");
    await expect(createKeyStore(directory).load()).rejects.toBeInstanceOf(ConfigError);
  });
});

describe("loadKeySet", () => {
  it("uses the DATA_DIR store, created on first use, and the same key afterwards", async () => {
    const source = { ...none, jwtKeysDir: undefined, dataDir: directory };
    const first = await loadKeySet(source);
    const again = await loadKeySet(source);
    expect(again.signer.kid).toBe(first.signer.kid);
    expect(keyStoreDirectory(source)).toBe(path.join(directory, "keys"));
  });

  it("publishes no key in HS256 mode", async () => {
    const keys = await loadKeySet({
      ...none,
      jwtSecret: "an HS256 secret that is 32 bytes long!",
      jwtKeysDir: undefined,
      dataDir: directory,
    });
    expect(keys.signer.algorithm).toBe("HS256");
    expect(JSON.parse(keys.jwksJson)).toEqual({ keys: [] });
  });

  it("signs with JWT_PRIVATE_KEY and verifies with JWT_KEYS_DIR's keys too", async () => {
    const pem = generateEs256Pem();
    const store = createKeyStore(directory);
    const stored = await store.generate();
    const keys = await loadKeySet({
      ...none,
      jwtPrivateKeyPem: pem,
      jwtKeysDir: directory,
      dataDir: undefined,
    });
    expect(keys.signer.kid).toBe(signingKeyFromPem(pem, "pem").kid);
    expect(keys.find(stored.kid)).toBeDefined();
    expect(JSON.parse(keys.jwksJson).keys).toHaveLength(2);
  });
});

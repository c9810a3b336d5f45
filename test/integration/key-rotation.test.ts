import { createPublicKey } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { status } from "@grpc/grpc-js";
import jwt from "jsonwebtoken";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createKeyStore } from "../../src/tokens/key-store.js";
import { generateEs256Pem, signingKeyFromPem } from "../../src/tokens/signing-keys.js";
import { grpcFailure, signUpAndLogin, startTestServer, type TestServer } from "./harness.js";

const kidOf = (token: string) => jwt.decode(token, { complete: true })?.header.kid;
const jwksKids = async (server: TestServer) =>
  (JSON.parse((await server.grpc.getJwks({})).jwksJson) as { keys: Array<{ kid: string }> }).keys
    .map((key) => key.kid)
    .sort();

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "auth-rotation-"));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("key rotation in the DATA_DIR key store", () => {
  it("keeps verifying tokens of the previous key after a rotation, and lists both keys", async () => {
    const first = await startTestServer({ DATA_DIR: dataDir });
    const before = await signUpAndLogin(first);
    const oldKid = kidOf(before.tokens.accessToken);
    await first.close();

    const store = createKeyStore(path.join(dataDir, "keys"));
    const { active, previous } = await store.rotate();
    expect(previous?.kid).toBe(oldKid);

    const second = await startTestServer({ DATA_DIR: dataDir });
    try {
      expect(await jwksKids(second)).toEqual([oldKid, active.kid].sort());
      const verified = await second.grpc.verify({ accessToken: before.tokens.accessToken });
      expect(verified.userId).toBe(before.user.id);
      const after = await signUpAndLogin(second);
      expect(kidOf(after.tokens.accessToken)).toBe(active.kid);
      // A refresh of a session that began under the old key gets a token of the new one.
      const refreshed = await second.grpc.refresh({ refreshToken: before.tokens.refreshToken });
      expect(kidOf(refreshed.tokens?.accessToken ?? "")).toBe(active.kid);
    } finally {
      await second.close();
    }
  });

  it("publishes a generated key before it signs, and refuses tokens of a removed key", async () => {
    const first = await startTestServer({ DATA_DIR: dataDir });
    const before = await signUpAndLogin(first);
    await first.close();
    const store = createKeyStore(path.join(dataDir, "keys"));
    const pending = await store.generate();
    expect(pending.active).toBe(false);

    const second = await startTestServer({ DATA_DIR: dataDir });
    try {
      expect(await jwksKids(second)).toContain(pending.kid);
      const { tokens } = await signUpAndLogin(second);
      expect(kidOf(tokens.accessToken)).toBe(kidOf(before.tokens.accessToken));
    } finally {
      await second.close();
    }

    await store.rotate();
    await store.remove(kidOf(before.tokens.accessToken) ?? "");
    const third = await startTestServer({ DATA_DIR: dataDir });
    try {
      expect(await jwksKids(third)).toEqual([pending.kid]);
      const error = await grpcFailure(
        third.grpc.verify({ accessToken: before.tokens.accessToken }),
      );
      expect(error).toMatchObject({ code: status.UNAUTHENTICATED, reason: "TOKEN_INVALID" });
    } finally {
      await third.close();
    }
  });

  it("adopts the key an older version kept in DATA_DIR/jwt-signing-key.pem", async () => {
    const pem = generateEs256Pem();
    await writeFile(path.join(dataDir, "jwt-signing-key.pem"), pem, { mode: 0o600 });
    const server = await startTestServer({ DATA_DIR: dataDir });
    try {
      const { tokens } = await signUpAndLogin(server);
      expect(kidOf(tokens.accessToken)).toBe(signingKeyFromPem(pem, "legacy").kid);
    } finally {
      await server.close();
    }
  });
});

describe("keys from configuration", () => {
  it("signs with JWT_PRIVATE_KEY_FILE and verifies with every key of JWT_KEYS_DIR", async () => {
    const signerPem = generateEs256Pem();
    const retiredPem = generateEs256Pem();
    const keysDir = path.join(dataDir, "mounted");
    const keyFile = path.join(dataDir, "signer.pem");
    await writeFile(keyFile, signerPem);
    const retiredOnly = await startTestServer({ JWT_PRIVATE_KEY: retiredPem });
    const old = await signUpAndLogin(retiredOnly);
    await retiredOnly.close();

    // The retired key is mounted as a public key only: it verifies, it cannot sign.
    const retiredPublicPem = createPublicKey(retiredPem).export({ format: "pem", type: "spki" });
    await mkdir(keysDir);
    await writeFile(path.join(keysDir, "2026-01-retired.pem"), retiredPublicPem);

    const server = await startTestServer({ JWT_PRIVATE_KEY_FILE: keyFile, JWT_KEYS_DIR: keysDir });
    try {
      const signerKid = signingKeyFromPem(signerPem, "signer").kid;
      const retiredKid = signingKeyFromPem(retiredPem, "retired").kid;
      expect(await jwksKids(server)).toEqual([signerKid, retiredKid].sort());
      const { tokens } = await signUpAndLogin(server);
      expect(kidOf(tokens.accessToken)).toBe(signerKid);
      expect((await server.grpc.verify({ accessToken: old.tokens.accessToken })).userId).toBe(
        old.user.id,
      );
    } finally {
      await server.close();
    }
  });
});

describe("GET /.well-known/jwks.json", () => {
  it("serves the JWK Set of GetJwks over plain HTTP with Cache-Control and an ETag", async () => {
    const server = await startTestServer();
    try {
      const url = `http://127.0.0.1:${server.app.httpPort}/.well-known/jwks.json`;
      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toBe("application/jwk-set+json");
      expect(response.headers.get("cache-control")).toMatch(/^public, max-age=\d+$/);
      expect(await response.text()).toBe((await server.grpc.getJwks({})).jwksJson);
      const etag = response.headers.get("etag") ?? "";
      expect((await fetch(url, { headers: { "if-none-match": etag } })).status).toBe(304);
      expect((await fetch(url, { method: "HEAD" })).status).toBe(200);
      expect((await fetch(url, { method: "POST" })).status).toBe(405);
      expect((await fetch(`http://127.0.0.1:${server.app.httpPort}/elsewhere`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });
});

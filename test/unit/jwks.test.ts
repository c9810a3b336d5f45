import { createPublicKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { verificationKeysFromJwks } from "../../src/tokens/jwks.js";
import {
  canSign,
  createKeySet,
  generateEs256Pem,
  keyFromPem,
  signingKeyFromPem,
  signingKeyFromSecret,
} from "../../src/tokens/signing-keys.js";

const pem = generateEs256Pem();
const signer = signingKeyFromPem(pem, "signer");
const other = signingKeyFromPem(generateEs256Pem(), "other");

describe("keyFromPem", () => {
  it("makes a verify-only key of a public PEM, with the kid of its private half", () => {
    const publicPem = createPublicKey(pem).export({ format: "pem", type: "spki" }).toString();
    const key = keyFromPem(publicPem, "public");
    expect(canSign(key)).toBe(false);
    expect(key.kid).toBe(signer.kid);
    expect(canSign(keyFromPem(pem, "private"))).toBe(true);
  });
});

describe("createKeySet", () => {
  it("puts the signer first, drops duplicate kids and publishes every public key", () => {
    const keys = createKeySet(signer, [other, signer, other]);
    expect(keys.keys.map((key) => key.kid)).toEqual([signer.kid, other.kid]);
    expect(keys.find(other.kid)).toBe(other);
    expect(keys.find("unknown")).toBeUndefined();
    expect(JSON.parse(keys.jwksJson).keys.map((jwk: { kid: string }) => jwk.kid)).toEqual([
      signer.kid,
      other.kid,
    ]);
  });
});

describe("verificationKeysFromJwks", () => {
  it("reads back the keys a key set publishes", () => {
    const keys = verificationKeysFromJwks(createKeySet(signer, [other]).jwksJson);
    expect(keys.map((key) => key.kid)).toEqual([signer.kid, other.kid]);
    expect(keys[0]?.verificationKey.equals(signer.verificationKey)).toBe(true);
  });

  it("skips keys it cannot use and refuses what is not a JWK Set", () => {
    const jwk = signer.publicJwk;
    const json = JSON.stringify({
      keys: [
        { ...jwk, alg: "RS256" },
        { ...jwk, kid: undefined },
        { ...jwk, d: "private" },
        { ...jwk, use: "enc" },
        { kty: "oct", k: "c2VjcmV0", kid: signingKeyFromSecret("s".repeat(32)).kid },
        jwk,
      ],
    });
    expect(verificationKeysFromJwks(json).map((key) => key.kid)).toEqual([signer.kid]);
    expect(() => verificationKeysFromJwks("{}")).toThrow();
    expect(() => verificationKeysFromJwks("not json")).toThrow();
  });
});

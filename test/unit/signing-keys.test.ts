import { createHash, generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config.js";
import {
  generateEs256Pem,
  jwkSetJson,
  signingKeyFromPem,
  signingKeyFromSecret,
} from "../../src/tokens/signing-keys.js";

const pem = generateEs256Pem();
const key = signingKeyFromPem(pem, "test key");

interface Jwk {
  kty?: string;
  crv?: string;
  x?: string;
  y?: string;
  d?: string;
  k?: string;
  kid?: string;
  alg?: string;
  use?: string;
}

function parseJwkSet(json: string): { keys: Jwk[] } {
  return JSON.parse(json) as { keys: Jwk[] };
}

describe("signingKeyFromPem", () => {
  it("makes an ES256 key from a P-256 PEM", () => {
    expect(key.algorithm).toBe("ES256");
    expect(key.signingKey.type).toBe("private");
    expect(key.verificationKey.type).toBe("public");
    expect(key.verificationKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
  });

  it("derives the same kid from the same PEM (so tokens survive a restart)", () => {
    expect(signingKeyFromPem(pem, "again").kid).toBe(key.kid);
    expect(signingKeyFromPem(generateEs256Pem(), "another").kid).not.toBe(key.kid);
  });

  it('accepts a SEC1 ("EC PRIVATE KEY") PEM as well as PKCS#8', () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const sec1 = privateKey.export({ format: "pem", type: "sec1" }).toString();
    const pkcs8 = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    expect(sec1).toContain("BEGIN EC PRIVATE KEY");
    expect(signingKeyFromPem(sec1, "sec1").kid).toBe(signingKeyFromPem(pkcs8, "pkcs8").kid);
  });

  it.each([
    [
      "P-384",
      () =>
        generateKeyPairSync("ec", { namedCurve: "P-384" })
          .privateKey.export({ format: "pem", type: "pkcs8" })
          .toString(),
    ],
    [
      "secp256k1",
      () =>
        generateKeyPairSync("ec", { namedCurve: "secp256k1" })
          .privateKey.export({ format: "pem", type: "pkcs8" })
          .toString(),
    ],
    [
      "RSA",
      () =>
        generateKeyPairSync("rsa", { modulusLength: 1024 })
          .privateKey.export({ format: "pem", type: "pkcs8" })
          .toString(),
    ],
    [
      "Ed25519",
      () =>
        generateKeyPairSync("ed25519")
          .privateKey.export({ format: "pem", type: "pkcs8" })
          .toString(),
    ],
    [
      "a P-256 public key",
      () =>
        generateKeyPairSync("ec", { namedCurve: "P-256" })
          .publicKey.export({ format: "pem", type: "spki" })
          .toString(),
    ],
    ["garbage", () => "not a pem"],
    ["empty", () => ""],
  ])("refuses %s with a ConfigError naming the source", (_label, makePem) => {
    let thrown: unknown;
    try {
      signingKeyFromPem(makePem(), "JWT_PRIVATE_KEY");
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).message).toContain("JWT_PRIVATE_KEY");
  });
});

describe("jwkSetJson", () => {
  it("publishes one ES256 key whose kid is its RFC 7638 thumbprint", () => {
    const set = parseJwkSet(jwkSetJson([key]));
    expect(set.keys).toHaveLength(1);
    const [jwk] = set.keys;
    expect(jwk).toMatchObject({ kty: "EC", crv: "P-256", alg: "ES256", use: "sig" });
    expect(jwk?.x).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(jwk?.y).toMatch(/^[A-Za-z0-9_-]{43}$/);

    // RFC 7638 §3.2: the required members, lexicographic order, no whitespace.
    const canonical = `{"crv":"P-256","kty":"EC","x":"${jwk?.x}","y":"${jwk?.y}"}`;
    const thumbprint = createHash("sha256").update(canonical).digest("base64url");
    expect(jwk?.kid).toBe(thumbprint);
    expect(key.kid).toBe(thumbprint);
  });

  it("publishes the public point of the signing key", () => {
    const [jwk] = parseJwkSet(jwkSetJson([key])).keys;
    const expected = key.verificationKey.export({ format: "jwk" });
    expect(jwk?.x).toBe(expected.x);
    expect(jwk?.y).toBe(expected.y);
  });

  it("never publishes the private part", () => {
    const json = jwkSetJson([key]);
    const [jwk] = parseJwkSet(json).keys;
    expect(jwk).not.toHaveProperty("d");
    const privateD = key.signingKey.export({ format: "jwk" }).d;
    expect(typeof privateD).toBe("string");
    expect(json).not.toContain(String(privateD));
  });

  it("is an empty set in HS256 mode: the secret is never published", () => {
    const secret = "a shared secret of at least 32 bytes!";
    const hs = signingKeyFromSecret(secret);
    expect(hs.algorithm).toBe("HS256");
    expect(hs.publicJwk).toBeUndefined();
    const json = jwkSetJson([hs]);
    expect(JSON.parse(json)).toEqual({ keys: [] });
    expect(json).not.toContain(Buffer.from(secret).toString("base64url"));
  });

  it("lists only the public keys of a mixed set", () => {
    const hs = signingKeyFromSecret("a shared secret of at least 32 bytes!");
    const other = signingKeyFromPem(generateEs256Pem(), "other");
    const kids = parseJwkSet(jwkSetJson([key, hs, other])).keys.map((jwk) => jwk.kid);
    expect(kids).toEqual([key.kid, other.kid]);
  });
});

describe("signingKeyFromSecret", () => {
  it("has a stable kid that differs between secrets", () => {
    const a = signingKeyFromSecret("a shared secret of at least 32 bytes!");
    expect(signingKeyFromSecret("a shared secret of at least 32 bytes!").kid).toBe(a.kid);
    expect(signingKeyFromSecret("another shared secret, 32 bytes long").kid).not.toBe(a.kid);
  });
});

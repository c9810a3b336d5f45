import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";
import { ConfigError } from "../config.js";

export type SigningAlgorithm = "ES256" | "HS256";

/** A key that verifies tokens; pre-parsed KeyObjects (PEM strings measured ~30x slower). */
export interface VerificationKey {
  /** RFC 7638 JWK thumbprint. */
  kid: string;
  algorithm: SigningAlgorithm;
  verificationKey: KeyObject;
  /** The public JWK; undefined for HS256, whose secret is never published. */
  publicJwk: JsonWebKey | undefined;
}

/** A key that also signs: its private half (or the shared secret) is at hand. */
export interface SigningKey extends VerificationKey {
  signingKey: KeyObject;
}

/** RFC 7638 §3: SHA-256 of the required members in lexicographic order, base64url. */
function jwkThumbprint(members: Record<string, string>): string {
  const canonical = JSON.stringify(
    Object.fromEntries(
      Object.keys(members)
        .sort()
        .map((name) => [name, members[name]]),
    ),
  );
  return createHash("sha256").update(canonical).digest("base64url");
}

function es256Key(publicKey: KeyObject): VerificationKey {
  const jwk = publicKey.export({ format: "jwk" });
  const kid = jwkThumbprint({
    crv: String(jwk.crv),
    kty: String(jwk.kty),
    x: String(jwk.x),
    y: String(jwk.y),
  });
  return {
    kid,
    algorithm: "ES256",
    verificationKey: publicKey,
    publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid, alg: "ES256", use: "sig" },
  };
}

function checkP256(key: KeyObject, source: string): void {
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new ConfigError(`${source} must be an EC P-256 key for ES256`);
  }
}

/** An ES256 key from a PEM P-256 private key. */
export function signingKeyFromPem(pem: string, source: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw new ConfigError(`${source} is not a PEM private key`, { cause: error });
  }
  checkP256(privateKey, source);
  return { ...es256Key(createPublicKey(privateKey)), signingKey: privateKey };
}

/**
 * An ES256 key from a PEM P-256 key: a private key can sign, a public one (a retired key
 * whose private half was destroyed) only verifies.
 */
export function keyFromPem(pem: string, source: string): SigningKey | VerificationKey {
  if (pem.includes("PRIVATE KEY-----")) {
    return signingKeyFromPem(pem, source);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey(pem);
  } catch (error) {
    throw new ConfigError(`${source} is not a PEM key`, { cause: error });
  }
  checkP256(publicKey, source);
  return es256Key(publicKey);
}

/** True for a key that can sign. */
export function canSign(key: VerificationKey): key is SigningKey {
  return "signingKey" in key;
}

/** An HS256 key from a shared secret (at least 32 bytes, checked by the config). */
export function signingKeyFromSecret(secret: string): SigningKey {
  const key = createSecretKey(Buffer.from(secret, "utf8"));
  const kid = jwkThumbprint({ k: Buffer.from(secret, "utf8").toString("base64url"), kty: "oct" });
  return { kid, algorithm: "HS256", signingKey: key, verificationKey: key, publicJwk: undefined };
}

export function generateEs256Pem(): string {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return privateKey.export({ format: "pem", type: "pkcs8" }).toString();
}

/** RFC 7517 JWK Set of the public keys. */
export function jwkSetJson(keys: readonly VerificationKey[]): string {
  return JSON.stringify({ keys: keys.flatMap((key) => (key.publicJwk ? [key.publicJwk] : [])) });
}

/** The keys of a service: one signs, all of them (the signer too) verify. */
export interface KeySet {
  signer: SigningKey;
  /** Every verification key, the signer first. */
  keys: readonly VerificationKey[];
  /** The verification key with this `kid`, or undefined. */
  find(kid: string): VerificationKey | undefined;
  /** RFC 7517 JWK Set of the public verification keys (empty in HS256 mode). */
  jwksJson: string;
}

/** A key set from its signer and the keys that only verify (duplicates of a kid dropped). */
export function createKeySet(
  signer: SigningKey,
  verifyOnly: readonly VerificationKey[] = [],
): KeySet {
  const byKid = new Map<string, VerificationKey>([[signer.kid, signer]]);
  for (const key of verifyOnly) {
    if (!byKid.has(key.kid)) {
      byKid.set(key.kid, key);
    }
  }
  const keys = [...byKid.values()];
  return { signer, keys, find: (kid) => byKid.get(kid), jwksJson: jwkSetJson(keys) };
}

import {
  createHash,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  type JsonWebKey,
  type KeyObject,
} from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { ConfigError } from "../config.js";

export type SigningAlgorithm = "ES256" | "HS256";

/** A key as jsonwebtoken wants it: pre-parsed KeyObjects (PEM strings measured ~30x slower). */
export interface SigningKey {
  /** RFC 7638 JWK thumbprint. */
  kid: string;
  algorithm: SigningAlgorithm;
  signingKey: KeyObject;
  verificationKey: KeyObject;
  /** The public JWK; undefined for HS256, whose secret is never published. */
  publicJwk: JsonWebKey | undefined;
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

/** An ES256 key from a PEM P-256 private key. */
export function signingKeyFromPem(pem: string, source: string): SigningKey {
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (error) {
    throw new ConfigError(`${source} is not a PEM private key`, { cause: error });
  }
  if (
    privateKey.asymmetricKeyType !== "ec" ||
    privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1"
  ) {
    throw new ConfigError(`${source} must be an EC P-256 private key for ES256`);
  }
  const publicKey = createPublicKey(privateKey);
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
    signingKey: privateKey,
    verificationKey: publicKey,
    publicJwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y, kid, alg: "ES256", use: "sig" },
  };
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
export function jwkSetJson(keys: readonly SigningKey[]): string {
  return JSON.stringify({ keys: keys.flatMap((key) => (key.publicJwk ? [key.publicJwk] : [])) });
}

export interface SigningKeySource {
  jwtSecret: string | undefined;
  jwtPrivateKeyPem: string | undefined;
  jwtPrivateKeyFile: string | undefined;
  dataDir: string | undefined;
}

export const GENERATED_KEY_FILE = "jwt-signing-key.pem";

/**
 * The signing key, from the first source that is set: JWT_SECRET (HS256),
 * JWT_PRIVATE_KEY, JWT_PRIVATE_KEY_FILE, else a P-256 key generated once and kept in
 * DATA_DIR (mode 0600) so that tokens survive a restart.
 */
export async function loadSigningKey(source: SigningKeySource): Promise<SigningKey> {
  if (source.jwtSecret !== undefined) {
    return signingKeyFromSecret(source.jwtSecret);
  }
  if (source.jwtPrivateKeyPem !== undefined) {
    return signingKeyFromPem(source.jwtPrivateKeyPem, "JWT_PRIVATE_KEY");
  }
  if (source.jwtPrivateKeyFile !== undefined) {
    let pem: string;
    try {
      pem = await readFile(source.jwtPrivateKeyFile, "utf8");
    } catch (error) {
      throw new ConfigError(`JWT_PRIVATE_KEY_FILE cannot be read: ${source.jwtPrivateKeyFile}`, {
        cause: error,
      });
    }
    return signingKeyFromPem(pem, "JWT_PRIVATE_KEY_FILE");
  }
  if (source.dataDir === undefined) {
    return signingKeyFromPem(generateEs256Pem(), "generated key");
  }
  const file = path.resolve(source.dataDir, GENERATED_KEY_FILE);
  await mkdir(source.dataDir, { recursive: true });
  try {
    // "wx": a replica starting at the same moment keeps the key written first.
    await writeFile(file, generateEs256Pem(), { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
      throw error;
    }
  }
  return signingKeyFromPem(await readFile(file, "utf8"), file);
}

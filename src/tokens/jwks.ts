import { createPublicKey, type JsonWebKey } from "node:crypto";
import type { VerificationKey } from "./signing-keys.js";

/**
 * The ES256 verification keys of an RFC 7517 JWK Set, as GetJwks publishes them. Keys this
 * verifier cannot use (another algorithm, no kid, a private member) are left out.
 */
export function verificationKeysFromJwks(jwksJson: string): VerificationKey[] {
  const parsed: unknown = JSON.parse(jwksJson);
  const keys = (parsed as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) {
    throw new Error("not a JWK Set: no keys array");
  }
  return keys.flatMap((entry: JsonWebKey): VerificationKey[] => {
    if (
      typeof entry !== "object" ||
      entry === null ||
      entry.kty !== "EC" ||
      entry.crv !== "P-256" ||
      (entry.alg !== undefined && entry.alg !== "ES256") ||
      (entry.use !== undefined && entry.use !== "sig") ||
      typeof entry.kid !== "string" ||
      "d" in entry
    ) {
      return [];
    }
    const { kty, crv, x, y, kid } = entry;
    return [
      {
        kid,
        algorithm: "ES256",
        verificationKey: createPublicKey({ key: { kty, crv, x, y }, format: "jwk" }),
        publicJwk: entry,
      },
    ];
  });
}

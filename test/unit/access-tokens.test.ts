import { createHmac, sign as cryptoSign, type KeyObject, randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import { beforeEach, describe, expect, it } from "vitest";
import type { User } from "../../src/accounts/user.js";
import { AuthError } from "../../src/auth-error.js";
import {
  ACCESS_TOKEN_TYPE,
  type AccessTokenVerifier,
  createAccessTokenIssuer,
  createAccessTokenVerifier,
} from "../../src/tokens/access-tokens.js";
import {
  generateEs256Pem,
  type SigningKey,
  signingKeyFromPem,
  signingKeyFromSecret,
} from "../../src/tokens/signing-keys.js";

const ISSUER = "auth-service";
const AUDIENCE = "internal";
const TTL_MS = 15 * 60 * 1000;
const TTL_S = TTL_MS / 1000;
const TOLERANCE_MS = 30_000;
const TOLERANCE_S = TOLERANCE_MS / 1000;
const START = Date.UTC(2026, 10, 23, 12, 0, 0);

const es256 = signingKeyFromPem(generateEs256Pem(), "test key");
const otherEs256 = signingKeyFromPem(generateEs256Pem(), "other test key");
const hs256 = signingKeyFromSecret("a shared secret of at least 32 bytes!");

const user: User = {
  id: randomUUID(),
  username: "alice.smith",
  email: "Alice@Example.com",
  phoneNumber: "+15551234567",
  firstName: "Alice",
  lastName: "Smith",
  createTime: new Date(START - 86_400_000),
};
const sessionId = randomUUID();

let now = START;
const clock = () => now;
beforeEach(() => {
  now = START;
});

function issuerFor(key: SigningKey, overrides: { issuer?: string; audience?: string } = {}) {
  return createAccessTokenIssuer({
    key,
    issuer: overrides.issuer ?? ISSUER,
    audience: overrides.audience ?? AUDIENCE,
    ttlMs: TTL_MS,
    clock,
  });
}

function verifierFor(keys: SigningKey[], clockToleranceMs = TOLERANCE_MS): AccessTokenVerifier {
  return createAccessTokenVerifier({
    findKey: (kid) => keys.find((key) => key.kid === kid),
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceMs,
    clock,
  });
}

const issue = issuerFor(es256);
const verify = verifierFor([es256]);

/** The reason of the AuthError `run` throws; undefined when it does not throw. */
function reasonOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof AuthError) {
      return error.reason;
    }
    throw error;
  }
  return undefined;
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

function decodePart(token: string, index: number): Record<string, unknown> {
  const part = token.split(".")[index] ?? "";
  return JSON.parse(Buffer.from(part, "base64url").toString("utf8")) as Record<string, unknown>;
}

type Signer = (signingInput: string) => string;

const es256Signer =
  (key: KeyObject): Signer =>
  (input) =>
    cryptoSign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" }).toString(
      "base64url",
    );

const hmacSigner =
  (secret: string | Buffer | KeyObject): Signer =>
  (input) =>
    createHmac("sha256", secret).update(input).digest("base64url");

/** A JWT built by hand, so every header and claim can be hostile. */
function handToken(header: object, payload: object, signer: Signer): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${signer(input)}`;
}

function goodHeader(): Record<string, unknown> {
  return { alg: "ES256", typ: "at+jwt", kid: es256.kid };
}

function goodClaims(): Record<string, unknown> {
  const nowS = Math.floor(now / 1000);
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: user.id,
    iat: nowS,
    exp: nowS + TTL_S,
    jti: randomUUID(),
    sid: sessionId,
    username: user.username,
    email: user.email,
  };
}

function es256Token(
  header: Record<string, unknown> = goodHeader(),
  claims: Record<string, unknown> = goodClaims(),
) {
  return handToken(header, claims, es256Signer(es256.signingKey));
}

describe("access tokens (ES256)", () => {
  it("issues a token that verifies, carrying every claim of DESIGN.md §3", () => {
    const { token, expireTime } = issue(user, sessionId);
    expect(expireTime.getTime()).toBe(START + TTL_MS);

    const header = decodePart(token, 0);
    expect(header).toMatchObject({ alg: "ES256", typ: ACCESS_TOKEN_TYPE, kid: es256.kid });
    expect(ACCESS_TOKEN_TYPE).toBe("at+jwt");

    const verified = verify(token);
    expect(verified).toMatchObject({
      userId: user.id,
      username: user.username,
      email: user.email,
      phoneNumber: user.phoneNumber,
      sessionId,
    });
    expect(verified.issueTime.getTime()).toBe(START);
    expect(verified.expireTime.getTime()).toBe(START + TTL_MS);
    expect(verified.claims).toMatchObject({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: user.id,
      sid: sessionId,
      iat: START / 1000,
      exp: START / 1000 + TTL_S,
      username: user.username,
      email: user.email,
      phone_number: user.phoneNumber,
    });
    expect(typeof verified.claims.jti).toBe("string");
  });

  it("gives every token its own jti", () => {
    const first = verify(issue(user, sessionId).token).claims.jti;
    const second = verify(issue(user, sessionId).token).claims.jti;
    expect(first).not.toBe(second);
  });

  it("leaves out phone_number for a user without one", () => {
    const verified = verify(issue({ ...user, phoneNumber: undefined }, sessionId).token);
    expect(verified.phoneNumber).toBeUndefined();
    expect(verified.claims).not.toHaveProperty("phone_number");
  });

  it("accepts a well-formed hand-built token (the baseline of the hostile ones)", () => {
    expect(verify(es256Token()).userId).toBe(user.id);
  });

  it('accepts typ "application/at+jwt" (RFC 9068 §4)', () => {
    const token = es256Token({ ...goodHeader(), typ: "application/at+jwt" });
    expect(verify(token).sessionId).toBe(sessionId);
  });

  describe("expiry", () => {
    it("is still valid after exp within the clock tolerance", () => {
      const { token } = issue(user, sessionId);
      now = START + TTL_MS;
      expect(verify(token).userId).toBe(user.id);
      now = START + TTL_MS + TOLERANCE_MS - 1000;
      expect(verify(token).userId).toBe(user.id);
    });

    it("is TOKEN_EXPIRED past exp beyond the clock tolerance", () => {
      const { token } = issue(user, sessionId);
      now = START + TTL_MS + TOLERANCE_MS + 1000;
      expect(reasonOf(() => verify(token))).toBe("TOKEN_EXPIRED");
      now = START + 365 * 86_400_000;
      expect(reasonOf(() => verify(token))).toBe("TOKEN_EXPIRED");
    });

    it("is TOKEN_EXPIRED at exp with no tolerance", () => {
      const strict = verifierFor([es256], 0);
      const { token } = issue(user, sessionId);
      now = START + TTL_MS - 1000;
      expect(strict(token).userId).toBe(user.id);
      now = START + TTL_MS;
      expect(reasonOf(() => strict(token))).toBe("TOKEN_EXPIRED");
    });

    it("is TOKEN_EXPIRED before nbf beyond the tolerance, valid within it", () => {
      const nowS = Math.floor(now / 1000);
      const later = es256Token(goodHeader(), { ...goodClaims(), nbf: nowS + TOLERANCE_S + 60 });
      expect(reasonOf(() => verify(later))).toBe("TOKEN_EXPIRED");
      const soon = es256Token(goodHeader(), { ...goodClaims(), nbf: nowS + TOLERANCE_S - 5 });
      expect(verify(soon).userId).toBe(user.id);
    });

    it("is TOKEN_INVALID when iat is in the future beyond the tolerance", () => {
      const nowS = Math.floor(now / 1000);
      const iat = nowS + TOLERANCE_S + 60;
      const token = es256Token(goodHeader(), { ...goodClaims(), iat, exp: iat + TTL_S });
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
    });

    it("accepts iat in the future within the tolerance", () => {
      const iat = Math.floor(now / 1000) + TOLERANCE_S - 5;
      const token = es256Token(goodHeader(), { ...goodClaims(), iat, exp: iat + TTL_S });
      expect(verify(token).userId).toBe(user.id);
    });

    it("is TOKEN_INVALID without exp (a token must not live forever)", () => {
      const { exp: _exp, ...claims } = goodClaims();
      expect(reasonOf(() => verify(es256Token(goodHeader(), claims)))).toBe("TOKEN_INVALID");
    });

    it("is TOKEN_INVALID without iat", () => {
      const { iat: _iat, ...claims } = goodClaims();
      expect(reasonOf(() => verify(es256Token(goodHeader(), claims)))).toBe("TOKEN_INVALID");
    });
  });

  describe("is TOKEN_INVALID", () => {
    it("for a tampered payload", () => {
      const { token } = issue(user, sessionId);
      const [header, , signature] = token.split(".");
      const forged = b64url({ ...decodePart(token, 1), sub: randomUUID() });
      expect(reasonOf(() => verify(`${header}.${forged}.${signature}`))).toBe("TOKEN_INVALID");
    });

    it("for a signature made with another key under our kid", () => {
      const token = handToken(goodHeader(), goodClaims(), es256Signer(otherEs256.signingKey));
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
    });

    it("for a missing or truncated signature", () => {
      const { token } = issue(user, sessionId);
      const [header, payload, signature = ""] = token.split(".");
      expect(reasonOf(() => verify(`${header}.${payload}.`))).toBe("TOKEN_INVALID");
      expect(reasonOf(() => verify(`${header}.${payload}`))).toBe("TOKEN_INVALID");
      const truncated = `${header}.${payload}.${signature.slice(0, -4)}`;
      expect(reasonOf(() => verify(truncated))).toBe("TOKEN_INVALID");
    });

    it('for alg "none"', () => {
      const none = handToken(
        { alg: "none", typ: "at+jwt", kid: es256.kid },
        goodClaims(),
        () => "",
      );
      expect(reasonOf(() => verify(none))).toBe("TOKEN_INVALID");
      const noneNoKid = handToken({ alg: "none", typ: "at+jwt" }, goodClaims(), () => "");
      expect(reasonOf(() => verify(noneNoKid))).toBe("TOKEN_INVALID");
    });

    it("for HS256 signed with the ES256 public key's PEM (algorithm confusion)", () => {
      const publicPem = es256.verificationKey.export({ format: "pem", type: "spki" });
      const header = { alg: "HS256", typ: "at+jwt", kid: es256.kid };
      const token = handToken(header, goodClaims(), hmacSigner(publicPem));
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
      // Also with the public key's DER and JWK text, other forms an attacker may try.
      const der = es256.verificationKey.export({ format: "der", type: "spki" });
      expect(reasonOf(() => verify(handToken(header, goodClaims(), hmacSigner(der))))).toBe(
        "TOKEN_INVALID",
      );
      const jwkText = JSON.stringify(es256.publicJwk);
      expect(reasonOf(() => verify(handToken(header, goodClaims(), hmacSigner(jwkText))))).toBe(
        "TOKEN_INVALID",
      );
    });

    it("for an ES384 header on our key", () => {
      const token = es256Token({ ...goodHeader(), alg: "ES384" });
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
    });

    it.each([
      ["JWT", "JWT"],
      ["jwt", "jwt"],
      ["empty", ""],
      ["a number", 1],
      ["at+jwt with a suffix", "at+jwtx"],
    ])("for typ %s", (_label, typ) => {
      expect(reasonOf(() => verify(es256Token({ ...goodHeader(), typ })))).toBe("TOKEN_INVALID");
    });

    it("for a missing typ", () => {
      const { typ: _typ, ...header } = goodHeader();
      expect(reasonOf(() => verify(es256Token(header)))).toBe("TOKEN_INVALID");
    });

    it("for a wrong iss", () => {
      const foreign = issuerFor(es256, { issuer: "someone-else" })(user, sessionId).token;
      expect(reasonOf(() => verify(foreign))).toBe("TOKEN_INVALID");
      const missing = { ...goodClaims(), iss: undefined };
      expect(reasonOf(() => verify(es256Token(goodHeader(), missing)))).toBe("TOKEN_INVALID");
    });

    it("for a wrong aud", () => {
      const foreign = issuerFor(es256, { audience: "another-audience" })(user, sessionId).token;
      expect(reasonOf(() => verify(foreign))).toBe("TOKEN_INVALID");
      const missing = { ...goodClaims(), aud: undefined };
      expect(reasonOf(() => verify(es256Token(goodHeader(), missing)))).toBe("TOKEN_INVALID");
    });

    it("for an unknown kid", () => {
      const { token } = issuerFor(otherEs256)(user, sessionId);
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
      const made = es256Token({ ...goodHeader(), kid: "no-such-key" });
      expect(reasonOf(() => verify(made))).toBe("TOKEN_INVALID");
    });

    it("for a missing or non-string kid", () => {
      const { kid: _kid, ...header } = goodHeader();
      expect(reasonOf(() => verify(es256Token(header)))).toBe("TOKEN_INVALID");
      expect(reasonOf(() => verify(es256Token({ ...header, kid: 7 })))).toBe("TOKEN_INVALID");
    });

    it.each([
      ["empty", ""],
      ["two parts", "a.b"],
      ["three junk parts", "a.b.c"],
      ["dots only", ".."],
      ["not a jwt", "not a jwt"],
      ["a JSON array header", `${Buffer.from("[1]").toString("base64url")}.e30.sig`],
      ["a JSON string header", `${Buffer.from('"x"').toString("base64url")}.e30.sig`],
      ["a null header", `${Buffer.from("null").toString("base64url")}.e30.sig`],
    ])("for a malformed string: %s", (_label, token) => {
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
    });

    it("for a payload that is not a JSON object", () => {
      const input = `${b64url(goodHeader())}.${Buffer.from('"just a string"').toString("base64url")}`;
      const token = `${input}.${es256Signer(es256.signingKey)(input)}`;
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
    });

    it.each(["sub", "sid", "username", "email"])("for a missing %s claim", (claim) => {
      const claims = goodClaims();
      delete claims[claim];
      expect(reasonOf(() => verify(es256Token(goodHeader(), claims)))).toBe("TOKEN_INVALID");
    });

    it("for a token larger than 8 KiB, even when correctly signed", () => {
      const claims = { ...goodClaims(), padding: "x".repeat(8 * 1024) };
      const token = es256Token(goodHeader(), claims);
      expect(token.length).toBeGreaterThan(8 * 1024);
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
      // The same token with a smaller padding is fine: only the size was wrong.
      const small = es256Token(goodHeader(), { ...claims, padding: "x".repeat(1024) });
      expect(verify(small).userId).toBe(user.id);
    });

    it("for an HS256 token presented to an ES256 verifier", () => {
      const { token } = issuerFor(hs256)(user, sessionId);
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
    });

    it("for an HS256 header on a kid that names an ES256 key, signed with the kid as secret", () => {
      const header = { alg: "HS256", typ: "at+jwt", kid: es256.kid };
      const token = handToken(header, goodClaims(), hmacSigner(es256.kid));
      expect(reasonOf(() => verify(token))).toBe("TOKEN_INVALID");
    });
  });
});

describe("access tokens (HS256)", () => {
  const issueHs = issuerFor(hs256);
  const verifyHs = verifierFor([hs256]);

  it("issues a token that verifies", () => {
    const { token } = issueHs(user, sessionId);
    expect(decodePart(token, 0)).toMatchObject({ alg: "HS256", typ: "at+jwt", kid: hs256.kid });
    expect(verifyHs(token)).toMatchObject({ userId: user.id, sessionId });
    // jsonwebtoken agrees that it is a plain HS256 JWT under this secret.
    const decoded = jwt.verify(token, hs256.verificationKey, {
      algorithms: ["HS256"],
      clockTimestamp: START / 1000,
    });
    expect(decoded).toMatchObject({ sub: user.id });
  });

  it("refuses a token signed with another secret", () => {
    const other = signingKeyFromSecret("another shared secret, also 32 bytes+");
    const header = { alg: "HS256", typ: "at+jwt", kid: hs256.kid };
    const token = handToken(header, goodClaims(), hmacSigner(other.signingKey));
    expect(reasonOf(() => verifyHs(token))).toBe("TOKEN_INVALID");
  });

  it("refuses an ES256 token presented under the HS256 key's kid", () => {
    const header = { alg: "ES256", typ: "at+jwt", kid: hs256.kid };
    const token = handToken(header, goodClaims(), es256Signer(es256.signingKey));
    expect(reasonOf(() => verifyHs(token))).toBe("TOKEN_INVALID");
  });

  it("expires like ES256 tokens", () => {
    const { token } = issueHs(user, sessionId);
    now = START + TTL_MS + TOLERANCE_MS + 1000;
    expect(reasonOf(() => verifyHs(token))).toBe("TOKEN_EXPIRED");
  });
});

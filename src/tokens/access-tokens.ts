import { randomUUID } from "node:crypto";
import jwt from "jsonwebtoken";
import type { User } from "../accounts/user.js";
import { AuthError } from "../auth-error.js";
import type { Clock } from "../clock.js";
import type { SigningKey, VerificationKey } from "./signing-keys.js";

/** RFC 9068 §2.1: the `typ` of a JWT access token. */
export const ACCESS_TOKEN_TYPE = "at+jwt";
/** Larger tokens are refused before any parsing. */
const MAX_TOKEN_LENGTH = 8 * 1024;

export interface IssuedAccessToken {
  token: string;
  expireTime: Date;
}

export interface VerifiedAccessToken {
  userId: string;
  username: string;
  email: string;
  phoneNumber: string | undefined;
  sessionId: string;
  issueTime: Date;
  expireTime: Date;
  /** Every claim of the token, as signed. */
  claims: Record<string, unknown>;
}

export interface AccessTokenIssuerOptions {
  key: SigningKey;
  issuer: string;
  audience: string;
  ttlMs: number;
  clock: Clock;
}

export type AccessTokenIssuer = (user: User, sessionId: string) => IssuedAccessToken;

export function createAccessTokenIssuer(options: AccessTokenIssuerOptions): AccessTokenIssuer {
  const { key, issuer, audience, ttlMs, clock } = options;
  const signOptions: jwt.SignOptions = {
    algorithm: key.algorithm,
    keyid: key.kid,
    header: { alg: key.algorithm, typ: ACCESS_TOKEN_TYPE },
  };
  return (user, sessionId) => {
    const issuedAt = Math.floor(clock() / 1000);
    const expiresAt = issuedAt + Math.ceil(ttlMs / 1000);
    const claims = {
      iss: issuer,
      aud: audience,
      sub: user.id,
      iat: issuedAt,
      exp: expiresAt,
      jti: randomUUID(),
      sid: sessionId,
      username: user.username,
      email: user.email,
      ...(user.phoneNumber ? { phone_number: user.phoneNumber } : {}),
    };
    return {
      token: jwt.sign(claims, key.signingKey, signOptions),
      expireTime: new Date(expiresAt * 1000),
    };
  };
}

export interface AccessTokenVerifierOptions {
  /** The verification key for a `kid`, or undefined when unknown. */
  findKey: (kid: string) => VerificationKey | undefined;
  issuer: string;
  audience: string;
  /** Leeway for exp, nbf and iat (at most 30 s). */
  clockToleranceMs: number;
  clock: Clock;
}

export type AccessTokenVerifier = (token: string) => VerifiedAccessToken;

const tokenInvalid = (cause?: unknown) =>
  new AuthError("TOKEN_INVALID", "the access token is invalid", { cause });

function decodeHeader(token: string): Record<string, unknown> {
  const dot = token.indexOf(".");
  try {
    const header: unknown = JSON.parse(
      Buffer.from(token.slice(0, dot), "base64url").toString("utf8"),
    );
    if (dot > 0 && typeof header === "object" && header !== null && !Array.isArray(header)) {
      return header as Record<string, unknown>;
    }
  } catch (error) {
    throw tokenInvalid(error);
  }
  throw tokenInvalid();
}

/**
 * The `kid` of a token's header, without verifying anything: a verifier whose keys are
 * fetched uses it to notice a key it does not know yet.
 */
export function accessTokenKeyId(token: string): string | undefined {
  if (token.length > MAX_TOKEN_LENGTH) {
    return undefined;
  }
  try {
    const { kid } = decodeHeader(token);
    return typeof kid === "string" ? kid : undefined;
  } catch {
    return undefined;
  }
}

function stringClaim(claims: Record<string, unknown>, name: string): string {
  const value = claims[name];
  if (typeof value !== "string" || value === "") {
    throw tokenInvalid(new Error(`claim ${name} missing`));
  }
  return value;
}

/**
 * Verifies an access token: the algorithm is pinned to the key named by `kid`, and
 * signature, typ, iss, aud, exp, nbf and iat are checked. Session revocation is
 * checked by the caller.
 */
export function createAccessTokenVerifier(
  options: AccessTokenVerifierOptions,
): AccessTokenVerifier {
  const { findKey, issuer, audience, clock } = options;
  const toleranceSeconds = Math.floor(options.clockToleranceMs / 1000);
  return (token) => {
    if (token.length > MAX_TOKEN_LENGTH) {
      throw tokenInvalid();
    }
    const header = decodeHeader(token);
    const key = typeof header.kid === "string" ? findKey(header.kid) : undefined;
    if (
      key === undefined ||
      header.alg !== key.algorithm ||
      typeof header.typ !== "string" ||
      !/^(application\/)?at\+jwt$/i.test(header.typ)
    ) {
      throw tokenInvalid();
    }
    const now = Math.floor(clock() / 1000);
    let claims: Record<string, unknown>;
    try {
      const payload = jwt.verify(token, key.verificationKey, {
        algorithms: [key.algorithm],
        issuer,
        audience,
        clockTolerance: toleranceSeconds,
        clockTimestamp: now,
      });
      if (typeof payload !== "object" || payload === null) {
        throw tokenInvalid();
      }
      claims = payload as Record<string, unknown>;
    } catch (error) {
      if (error instanceof jwt.TokenExpiredError || error instanceof jwt.NotBeforeError) {
        throw new AuthError("TOKEN_EXPIRED", "the access token has expired", { cause: error });
      }
      throw error instanceof AuthError ? error : tokenInvalid(error);
    }
    const { iat, exp } = claims;
    if (typeof iat !== "number" || typeof exp !== "number" || iat > now + toleranceSeconds) {
      throw tokenInvalid();
    }
    const phoneNumber = claims.phone_number;
    return {
      userId: stringClaim(claims, "sub"),
      username: stringClaim(claims, "username"),
      email: stringClaim(claims, "email"),
      phoneNumber: typeof phoneNumber === "string" ? phoneNumber : undefined,
      sessionId: stringClaim(claims, "sid"),
      issueTime: new Date(iat * 1000),
      expireTime: new Date(exp * 1000),
      claims,
    };
  };
}

/**
 * A verifier that also refuses tokens of revoked sessions (SESSION_REVOKED), asking
 * `isRevoked`, which answers from memory: no database round trip per token.
 */
export function withRevocationCheck(
  verify: AccessTokenVerifier,
  isRevoked: (sessionId: string) => boolean,
): AccessTokenVerifier {
  return (token) => {
    const verified = verify(token);
    if (isRevoked(verified.sessionId)) {
      throw new AuthError("SESSION_REVOKED", "the session has been revoked");
    }
    return verified;
  };
}

const BEARER = /^Bearer[ \t]+([^ \t]+)[ \t]*$/i;

/** The token of an `authorization: Bearer <token>` header value, or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
}

import { createHmac, createPublicKey, sign as cryptoSign, generateKeyPairSync } from "node:crypto";
import http from "node:http";
import type net from "node:net";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createUserAdmin } from "../../src/accounts/user-admin.js";
import { createTokenChecker, type TokenChecker } from "../../src/interceptors/index.js";
import { generateEs256Pem, signingKeyFromPem } from "../../src/tokens/signing-keys.js";
import {
  connectFailure,
  grpcFailure,
  signUpAndLogin,
  startTestServer,
  type TestServer,
} from "./harness.js";

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

/** A JWS with any header, signed ES256 (raw r‖s) with the given key. */
function es256(header: object, claims: object, privateKeyPem: string): string {
  const input = `${b64(header)}.${b64(claims)}`;
  const signature = cryptoSign("sha256", Buffer.from(input), {
    key: privateKeyPem,
    dsaEncoding: "ieee-p1363",
  });
  return `${input}.${signature.toString("base64url")}`;
}

function hs256(header: object, claims: object, secret: string | Buffer): string {
  const input = `${b64(header)}.${b64(claims)}`;
  return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
}

describe("JWT attacks over Verify", () => {
  const privateKeyPem = generateEs256Pem();
  const key = signingKeyFromPem(privateKeyPem, "test");
  const attackerPem = generateEs256Pem();
  let server: TestServer;
  let token: string;
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  // Any request to this server means a header made the service fetch a key.
  const fetched: string[] = [];
  const keyServer = http.createServer((request, response) => {
    fetched.push(request.url ?? "");
    response.end(JSON.stringify({ keys: [] }));
  });
  let keyUrl = "";
  // What the Connect and grpc-js interceptors call: local (JWK Set) and remote (Verify) modes.
  const stopCheckers = new AbortController();
  let checkers: TokenChecker[] = [];

  beforeAll(async () => {
    await new Promise<void>((resolve) => keyServer.listen(0, "127.0.0.1", resolve));
    keyUrl = `http://127.0.0.1:${(keyServer.address() as net.AddressInfo).port}/jwks.json`;
    server = await startTestServer({ JWT_PRIVATE_KEY: privateKeyPem });
    ({
      tokens: { accessToken: token },
    } = await signUpAndLogin(server));
    const transport = createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` });
    const local = createTokenChecker({
      transport,
      clock: () => server.clock.now,
      signal: stopCheckers.signal,
    });
    await local.ready();
    checkers = [local, createTokenChecker({ transport, mode: "remote" })];
    const [h, c] = token.split(".");
    header = JSON.parse(Buffer.from(h ?? "", "base64url").toString());
    claims = JSON.parse(Buffer.from(c ?? "", "base64url").toString());
  });
  afterAll(async () => {
    stopCheckers.abort();
    await server?.close();
    await new Promise((resolve) => keyServer.close(resolve));
  });

  const now = () => Math.floor(server.clock.now / 1000);
  const publicPem = () =>
    createPublicKey(privateKeyPem).export({ format: "pem", type: "spki" }).toString();

  /** Every attack: a name, the token, and the reason it must get. */
  const attacks: [string, () => string, string][] = [
    ["alg none", () => `${b64({ ...header, alg: "none" })}.${b64(claims)}.`, "TOKEN_INVALID"],
    [
      "alg none with the real signature",
      () => `${b64({ ...header, alg: "none" })}.${b64(claims)}.${token.split(".")[2]}`,
      "TOKEN_INVALID",
    ],
    [
      "ES256→HS256 with the PEM public key as HMAC secret",
      () => hs256({ ...header, alg: "HS256" }, claims, publicPem()),
      "TOKEN_INVALID",
    ],
    [
      "ES256→HS256 with the JWK public key as HMAC secret",
      () => hs256({ ...header, alg: "HS256" }, claims, JSON.stringify(key.publicJwk)),
      "TOKEN_INVALID",
    ],
    [
      "RS256 header",
      () => {
        const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
        const input = `${b64({ ...header, alg: "RS256" })}.${b64(claims)}`;
        return `${input}.${cryptoSign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
      },
      "TOKEN_INVALID",
    ],
    [
      "kid with a path",
      () => es256({ ...header, kid: "../../../../../../dev/null" }, claims, privateKeyPem),
      "TOKEN_INVALID",
    ],
    [
      "kid with SQL",
      () => es256({ ...header, kid: "' UNION SELECT 'secret' --" }, claims, privateKeyPem),
      "TOKEN_INVALID",
    ],
    [
      "kid missing",
      () => es256({ alg: "ES256", typ: "at+jwt" }, claims, privateKeyPem),
      "TOKEN_INVALID",
    ],
    [
      "attacker key embedded as jwk",
      () =>
        es256(
          {
            ...header,
            jwk: createPublicKey(attackerPem).export({ format: "jwk" }),
          },
          claims,
          attackerPem,
        ),
      "TOKEN_INVALID",
    ],
    [
      "attacker key behind jku",
      () => es256({ ...header, jku: keyUrl }, claims, attackerPem),
      "TOKEN_INVALID",
    ],
    [
      "attacker key behind x5u",
      () => es256({ ...header, x5u: keyUrl }, claims, attackerPem),
      "TOKEN_INVALID",
    ],
    ["typ JWT", () => es256({ ...header, typ: "JWT" }, claims, privateKeyPem), "TOKEN_INVALID"],
    [
      "typ missing",
      () => es256({ alg: "ES256", kid: header.kid }, claims, privateKeyPem),
      "TOKEN_INVALID",
    ],
    [
      "another issuer",
      () => es256(header, { ...claims, iss: "evil" }, privateKeyPem),
      "TOKEN_INVALID",
    ],
    [
      "another audience",
      () => es256(header, { ...claims, aud: "other" }, privateKeyPem),
      "TOKEN_INVALID",
    ],
    [
      "tampered payload",
      () => {
        const [h, , s] = token.split(".");
        return `${h}.${b64({ ...claims, username: "admin" })}.${s}`;
      },
      "TOKEN_INVALID",
    ],
    [
      "tampered signature",
      () => {
        const [h, c, s = ""] = token.split(".");
        const flipped = s.startsWith("A") ? `B${s.slice(1)}` : `A${s.slice(1)}`;
        return `${h}.${c}.${flipped}`;
      },
      "TOKEN_INVALID",
    ],
    ["no signature", () => token.split(".").slice(0, 2).join("."), "TOKEN_INVALID"],
    [
      "expired beyond the leeway",
      () => es256(header, { ...claims, iat: now() - 3600, exp: now() - 31 }, privateKeyPem),
      "TOKEN_EXPIRED",
    ],
    [
      "not valid before a future nbf",
      () => es256(header, { ...claims, nbf: now() + 120 }, privateKeyPem),
      "TOKEN_EXPIRED",
    ],
    [
      "issued in the future",
      () => es256(header, { ...claims, iat: now() + 120, exp: now() + 1000 }, privateKeyPem),
      "TOKEN_INVALID",
    ],
    [
      "oversized",
      () => es256(header, { ...claims, pad: "x".repeat(9 * 1024) }, privateKeyPem),
      "TOKEN_INVALID",
    ],
    ["not a JWT", () => "not.a.jwt", "TOKEN_INVALID"],
    [
      "header of JSON metacharacters",
      () => `${Buffer.from('{"alg":').toString("base64url")}.e30.`,
      "TOKEN_INVALID",
    ],
  ];

  it.each(attacks)(
    "%s: UNAUTHENTICATED with the right reason, on gRPC, Connect and through the interceptors",
    async (_name, make, reason) => {
      const forged = make();
      const viaField = await grpcFailure(server.grpc.verify({ accessToken: forged }));
      expect(viaField).toMatchObject({ code: 16, reason });
      const viaHeader = await grpcFailure(
        server.grpc.verify({}, { authorization: `Bearer ${forged}` }),
      );
      expect(viaHeader).toMatchObject({ code: 16, reason });
      const viaConnect = await connectFailure(server.connect.verify({ accessToken: forged }));
      expect(viaConnect).toMatchObject({ code: 16, reason });
      for (const checker of checkers) {
        await expect(checker.check(`Bearer ${forged}`)).rejects.toMatchObject({ reason });
      }
    },
  );

  it("ignores jku, x5u and jwk headers on a genuine token, and fetches nothing", async () => {
    const genuine = es256(
      { ...header, jku: keyUrl, x5u: keyUrl, jwk: key.publicJwk },
      claims,
      privateKeyPem,
    );
    await expect(server.grpc.verify({ accessToken: genuine })).resolves.toMatchObject({
      userId: claims.sub,
    });
    expect(fetched).toEqual([]);
  });

  it("answers TOKEN_EXPIRED once the clock passes exp", async () => {
    const { tokens } = await signUpAndLogin(server);
    server.clock.advance(16 * 60 * 1000);
    try {
      const failure = await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }));
      expect(failure).toMatchObject({ code: 16, reason: "TOKEN_EXPIRED" });
    } finally {
      server.clock.advance(-16 * 60 * 1000);
    }
  });

  it("answers SESSION_REVOKED for a token of a disabled user, who cannot log in either", async () => {
    const { input, tokens } = await signUpAndLogin(server);
    const admin = createUserAdmin({ db: server.app.db, clock: () => server.clock.now });
    expect((await admin.disable(input.username))?.revokedSessions).toBe(1);
    // The revocation reaches the in-memory list through the database's notification.
    await expect
      .poll(
        async () =>
          (await grpcFailure(server.grpc.verify({ accessToken: tokens.accessToken }))).reason,
      )
      .toBe("SESSION_REVOKED");
    const login = await grpcFailure(
      server.grpc.login({ identifier: input.username, password: input.password }),
    );
    expect(login.reason).toBe("INVALID_CREDENTIALS");
  });
});

import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { User } from "../../src/accounts/user.js";
import { createUserAdmin } from "../../src/accounts/user-admin.js";
import type { AuditRecord } from "../../src/audit-log.js";
import { AuthError } from "../../src/auth-error.js";
import { type Database, openDatabase } from "../../src/db/database.js";
import { migrateToLatest } from "../../src/db/migrate.js";
import { insertUser } from "../../src/db/users.js";
import { createAccessTokenIssuer } from "../../src/tokens/access-tokens.js";
import { createSessions, type Sessions } from "../../src/tokens/refresh-sessions.js";
import { generateEs256Pem, signingKeyFromPem } from "../../src/tokens/signing-keys.js";
import { uniqueName } from "./harness.js";

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const REFRESH_TOKEN_TTL_MS = 30 * DAY;

// The domain on its own database connection, so that the statements a refresh runs can be counted.
let db: Database;
let sessions: Sessions;
let now: number;
const statements: string[] = [];
const audits: AuditRecord[] = [];
const revoked: string[] = [];
const caller = { clientAddress: "192.0.2.7", signal: new AbortController().signal };

beforeAll(async () => {
  db = await openDatabase({
    url: process.env.TEST_DATABASE_URL || undefined,
    dataDir: undefined,
    onQuery: (query) => statements.push(query.sql),
  });
  await migrateToLatest(db);
  const clock = () => now;
  sessions = createSessions({
    db,
    clock,
    issueAccessToken: createAccessTokenIssuer({
      key: signingKeyFromPem(generateEs256Pem(), "test"),
      issuer: "auth-service",
      audience: "internal",
      ttlMs: 15 * MINUTE,
      clock,
    }),
    refreshTokenTtlMs: REFRESH_TOKEN_TTL_MS,
    sessionMaxAgeMs: 90 * DAY,
    reuseGraceMs: 0,
    audit: (record) => audits.push(record),
    onSessionsRevoked: (sessionIds) => revoked.push(...sessionIds),
  });
});
afterAll(async () => {
  await db?.destroy();
});
beforeEach(() => {
  now = Date.now();
});

async function newUser(): Promise<User> {
  const username = uniqueName();
  const user = {
    id: randomUUID(),
    username,
    email: `${username}@example.com`,
    phoneNumber: undefined,
    firstName: "",
    lastName: "",
    createTime: new Date(now),
  };
  await insertUser(db, user, "not a password hash");
  return user;
}

async function loggedIn() {
  const user = await newUser();
  const tokens = await sessions.start(user, caller);
  return { user, tokens };
}

/** The refresh tokens of a user's sessions, as stored. */
function storedTokens(userId: string) {
  return db
    .selectFrom("refresh_tokens as t")
    .innerJoin("sessions as s", "s.id", "t.session_id")
    .select(["t.token_hash", "t.parent_hash", "t.use_time", "t.expire_time", "t.reuse_count"])
    .where("s.user_id", "=", userId)
    .orderBy("t.create_time")
    .execute();
}

async function refusal(refreshToken: string): Promise<string> {
  try {
    await sessions.refresh(refreshToken, caller);
  } catch (error) {
    if (error instanceof AuthError) {
      return error.reason;
    }
    throw error;
  }
  throw new Error("expected the refresh to fail, but it succeeded");
}

describe("Refresh of a usable token", () => {
  it("rotates in one statement, outside any transaction", async () => {
    const { user, tokens } = await loggedIn();
    now += MINUTE;
    statements.length = 0;
    const next = await sessions.refresh(tokens.refreshToken, caller);
    expect(statements).toHaveLength(1);
    expect(statements[0]).not.toMatch(/^\s*begin/i);

    const [presented, issued] = await storedTokens(user.id);
    expect(presented?.use_time).toEqual(new Date(now));
    expect(issued?.parent_hash).toEqual(presented?.token_hash);
    expect(issued?.use_time).toBeNull();
    expect(issued?.expire_time).toEqual(new Date(now + REFRESH_TOKEN_TTL_MS));
    expect(next.refreshTokenExpireTime).toEqual(new Date(now + REFRESH_TOKEN_TTL_MS));
    expect(audits.at(-1)).toMatchObject({ event: "refresh", userId: user.id, reason: "rotation" });
    // The next token is the one stored: it rotates in turn.
    await sessions.refresh(next.refreshToken, caller);
  });
});

describe("Refresh of a token that is not usable", () => {
  /** Each makes a logged-in user's token unusable in its own way; Refresh must answer `reason`. */
  const cases: Array<{
    name: string;
    spoil(login: Awaited<ReturnType<typeof loggedIn>>): Promise<unknown>;
    reason: string;
  }> = [
    {
      name: "already rotated",
      spoil: ({ tokens }) => sessions.refresh(tokens.refreshToken, caller),
      reason: "REFRESH_TOKEN_REUSED",
    },
    {
      name: "past its expire time",
      spoil: async ({ tokens }) => {
        now = tokens.refreshTokenExpireTime.getTime();
      },
      reason: "REFRESH_TOKEN_EXPIRED",
    },
    {
      name: "of a session past its expire time, before the token's",
      spoil: ({ user }) =>
        db
          .updateTable("sessions")
          .set({ expire_time: new Date(now) })
          .where("user_id", "=", user.id)
          .execute(),
      reason: "REFRESH_TOKEN_EXPIRED",
    },
    {
      name: "of a logged-out session",
      spoil: ({ tokens }) => sessions.logout(tokens.refreshToken, false, caller),
      reason: "SESSION_REVOKED",
    },
    {
      name: "of a disabled user",
      spoil: ({ user }) => createUserAdmin({ db, clock: () => now }).disable(user.id),
      reason: "SESSION_REVOKED",
    },
  ];

  for (const { name, spoil, reason } of cases) {
    it(`answers ${reason} for a token ${name}, from the locking path`, async () => {
      const login = await loggedIn();
      await spoil(login);
      const before = await storedTokens(login.user.id);
      statements.length = 0;
      expect(await refusal(login.tokens.refreshToken)).toBe(reason);
      // The one-statement rotation refused it, so the transaction decided.
      expect(statements.filter((sql) => /^\s*begin/i.test(sql))).toHaveLength(1);
      expect(await storedTokens(login.user.id)).toEqual(before);
    });
  }

  it("answers REFRESH_TOKEN_INVALID for an unknown token and writes nothing", async () => {
    const { user } = await loggedIn();
    const before = await storedTokens(user.id);
    expect(await refusal("C".repeat(43))).toBe("REFRESH_TOKEN_INVALID");
    expect(await storedTokens(user.id)).toEqual(before);
  });

  it("revokes the session of a reused token and announces it, as before", async () => {
    const { user, tokens } = await loggedIn();
    const next = await sessions.refresh(tokens.refreshToken, caller);
    revoked.length = 0;
    expect(await refusal(tokens.refreshToken)).toBe("REFRESH_TOKEN_REUSED");
    expect(revoked).toHaveLength(1);
    expect(audits.at(-1)).toMatchObject({ event: "refresh_token_reused", userId: user.id });
    expect(await refusal(next.refreshToken)).toBe("SESSION_REVOKED");
  });
});

describe("Login racing `users disable`", () => {
  it("starts no session for a user disabled after their password was checked", async () => {
    const user = await newUser();
    // What a Login sees: the user was enabled when looked up, and is disabled by now.
    await createUserAdmin({ db, clock: () => now }).disable(user.id);
    const refusal = await sessions.start(user, caller).then(
      () => "started",
      (error: unknown) => (error instanceof AuthError ? error.reason : String(error)),
    );
    expect(refusal).toBe("INVALID_CREDENTIALS");
    expect(await storedTokens(user.id)).toEqual([]);
    expect(audits.at(-1)).toMatchObject({
      event: "login_failed",
      userId: user.id,
      reason: "disabled",
    });
  });

  it("still starts sessions for an enabled user", async () => {
    const { user, tokens } = await loggedIn();
    expect(tokens.refreshToken).not.toBe("");
    expect(await storedTokens(user.id)).toHaveLength(1);
  });
});

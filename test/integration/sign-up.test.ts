import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  grpcFailure,
  newUser,
  startTestServer,
  type TestServer,
  uniqueName,
  uniquePhoneNumber,
} from "./harness.js";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  await server?.close();
});

async function userCount(): Promise<number> {
  const row = await server.app.db
    .selectFrom("users")
    .select((eb) => eb.fn.countAll<string>().as("count"))
    .executeTakeFirstOrThrow();
  return Number(row.count);
}

describe("SignUp", () => {
  it("creates a user with normalized fields and no secrets in the answer", async () => {
    const username = uniqueName("Ann");
    const phone = uniquePhoneNumber();
    const spaced = `${phone.slice(0, 2)} (${phone.slice(2, 5)}) ${phone.slice(5, 8)}-${phone.slice(8)}`;
    const { user } = await server.grpc.signUp({
      ...newUser({ username: `  ${username} `, email: `${username}@Example.COM` }),
      phoneNumber: spaced,
      firstName: " Ann\u0065\u0301 ",
      lastName: "Lee",
    });
    expect(user?.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(user?.username).toBe(username);
    expect(user?.email).toBe(`${username}@Example.COM`);
    expect(user?.phoneNumber).toBe(phone);
    expect(user?.firstName).toBe("Ann\u00e9");
    expect(user?.lastName).toBe("Lee");
    expect(user?.createTime?.seconds).toBeGreaterThan(0n);
    const row = await server.app.db
      .selectFrom("users")
      .select(["password_hash", "phone_number"])
      .where("id", "=", user?.id ?? "")
      .executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=1024,t=1,p=1\$/);
    expect(row.phone_number).toBe(phone);
  });

  it("names every bad field in one INVALID_ARGUMENT and writes nothing", async () => {
    const before = await userCount();
    const error = await grpcFailure(
      server.grpc.signUp({
        username: "12345",
        email: "not-an-email",
        password: "short",
        phoneNumber: "0123",
        firstName: "x".repeat(256),
        lastName: "bad\u0000name",
      }),
    );
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.reason).toBe("INVALID_ARGUMENT");
    expect(error.domain).toBe("auth.v1");
    expect(error.badFields.sort()).toEqual(
      ["email", "first_name", "last_name", "password", "phone_number", "username"].sort(),
    );
    expect(await userCount()).toBe(before);
  });

  it.each([
    ["a common password", { password: "password1" }],
    ["the username as password", { username: "samename", password: "SameName" }],
    ["a username with a space", { username: "no spaces" }],
    ["a control character", { username: "tab\tname" }],
    ["a missing email", { email: "" }],
  ])("refuses %s", async (_, overrides) => {
    const error = await grpcFailure(server.grpc.signUp(newUser(overrides)));
    expect(error.code).toBe(status.INVALID_ARGUMENT);
    expect(error.reason).toBe("INVALID_ARGUMENT");
    expect(error.badFields.length).toBeGreaterThan(0);
  });

  it("refuses a taken username, email or phone number regardless of case and format", async () => {
    const phone = uniquePhoneNumber();
    const first = newUser({ phoneNumber: phone });
    await server.grpc.signUp(first);
    const before = await userCount();

    const sameUsername = await grpcFailure(
      server.grpc.signUp(newUser({ username: first.username.toUpperCase() })),
    );
    expect(sameUsername).toMatchObject({
      code: status.ALREADY_EXISTS,
      reason: "USER_ALREADY_EXISTS",
      metadata: { field: "username" },
    });

    const sameEmail = await grpcFailure(
      server.grpc.signUp(newUser({ email: first.email.toUpperCase() })),
    );
    expect(sameEmail).toMatchObject({
      reason: "USER_ALREADY_EXISTS",
      metadata: { field: "email" },
    });

    const samePhone = await grpcFailure(
      server.grpc.signUp(newUser({ phoneNumber: `${phone.slice(0, 5)} ${phone.slice(5)}` })),
    );
    expect(samePhone).toMatchObject({
      reason: "USER_ALREADY_EXISTS",
      metadata: { field: "phone_number" },
    });
    expect(await userCount()).toBe(before);
  });

  it("lets exactly one of ten concurrent sign-ups for one username win", async () => {
    const username = uniqueName();
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        server.grpc.signUp(newUser({ username, email: `${username}.${i}@example.com` })),
      ),
    );
    expect(results.filter((result) => result.status === "fulfilled")).toHaveLength(1);
    for (const result of results) {
      if (result.status === "rejected") {
        expect(result.reason.code).toBe(status.ALREADY_EXISTS);
      }
    }
  });
});

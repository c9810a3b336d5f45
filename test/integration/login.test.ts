import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createArgon2idHasher } from "../../src/accounts/password-hasher.js";
import { insertUser } from "../../src/db/users.js";
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

describe("Login", () => {
  it("accepts a username, an email or a phone number, ignoring case", async () => {
    const phone = uniquePhoneNumber();
    const input = newUser({ username: uniqueName("Mixed"), phoneNumber: phone });
    const { user } = await server.grpc.signUp(input);
    const identifiers = [
      input.username,
      input.username.toLowerCase(),
      input.email.toUpperCase(),
      phone,
      phone.slice(1), // digits only: the "+" is implied
      `${phone.slice(0, 4)} ${phone.slice(4, 8)}-${phone.slice(8)}`,
    ];
    for (const identifier of identifiers) {
      const response = await server.grpc.login({ identifier, password: input.password });
      expect(response.user?.id, identifier).toBe(user?.id);
      expect(response.tokens?.tokenType).toBe("Bearer");
      expect(response.tokens?.accessToken.split(".")).toHaveLength(3);
      expect(response.tokens?.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    }
  });

  it("answers the same INVALID_CREDENTIALS for a wrong password and an unknown user", async () => {
    const input = newUser();
    await server.grpc.signUp(input);
    const wrongPassword = await grpcFailure(
      server.grpc.login({ identifier: input.username, password: "not the password" }),
    );
    const unknownUser = await grpcFailure(
      server.grpc.login({ identifier: uniqueName("ghost"), password: input.password }),
    );
    const unknownPhone = await grpcFailure(
      server.grpc.login({ identifier: "+1 555", password: input.password }),
    );
    for (const error of [wrongPassword, unknownUser, unknownPhone]) {
      expect(error.code).toBe(status.UNAUTHENTICATED);
      expect(error.reason).toBe("INVALID_CREDENTIALS");
    }
    expect(unknownUser.message).toBe(wrongPassword.message);
  });

  it("refuses an empty identifier or password with INVALID_ARGUMENT", async () => {
    const error = await grpcFailure(server.grpc.login({ identifier: " ", password: "" }));
    expect(error.reason).toBe("INVALID_ARGUMENT");
    expect(error.badFields.sort()).toEqual(["identifier", "password"]);
  });

  it("rehashes a password hashed with older parameters on the next login", async () => {
    const input = newUser();
    const oldHasher = createArgon2idHasher({ memoryKib: 2048, timeCost: 1, parallelism: 1 });
    const id = crypto.randomUUID();
    await insertUser(
      server.app.db,
      {
        id,
        username: input.username,
        email: input.email,
        phoneNumber: undefined,
        firstName: "",
        lastName: "",
        createTime: new Date(),
      },
      await oldHasher.hash(input.password),
    );
    const storedHash = async () =>
      (
        await server.app.db
          .selectFrom("users")
          .select("password_hash")
          .where("id", "=", id)
          .executeTakeFirstOrThrow()
      ).password_hash;
    expect(await storedHash()).toContain("m=2048,t=1,p=1");

    await grpcFailure(
      server.grpc.login({ identifier: input.username, password: "wrong password" }),
    );
    expect(await storedHash()).toContain("m=2048,t=1,p=1");

    await server.grpc.login({ identifier: input.username, password: input.password });
    expect(await storedHash()).toContain("m=1024,t=1,p=1");
    await server.grpc.login({ identifier: input.email, password: input.password });
  });
});

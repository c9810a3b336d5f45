import { describe, expect, it } from "vitest";
import { createCommonPasswordCheck } from "../../src/accounts/common-passwords.js";
import {
  classifyIdentifier,
  type SignUpInput,
  type ValidSignUp,
  validateLogin,
  validateSignUp,
} from "../../src/accounts/validation.js";
import type { FieldViolation } from "../../src/auth-error.js";

const isCommonPassword = createCommonPasswordCheck();

/** A sign-up that breaks no rule; each test changes one or more fields. */
const VALID: SignUpInput = {
  username: "alice.smith",
  email: "alice@example.com",
  password: "zq8#Lm2!vK",
  phoneNumber: "+15551234567",
  firstName: "Alice",
  lastName: "Smith",
};

function signUp(changes: Partial<SignUpInput>) {
  return validateSignUp({ ...VALID, ...changes }, isCommonPassword);
}

/** The accepted values; fails the test when the input was refused. */
function accepted(changes: Partial<SignUpInput>): ValidSignUp {
  const result = signUp(changes);
  if (!result.ok) {
    throw new Error(`expected acceptance, got ${JSON.stringify(result.violations)}`);
  }
  return result.value;
}

/** The violations; fails the test when the input was accepted. */
function refused(changes: Partial<SignUpInput>): FieldViolation[] {
  const result = signUp(changes);
  if (result.ok) {
    throw new Error(`expected refusal of ${JSON.stringify(changes)}`);
  }
  return result.violations;
}

function refusedFields(changes: Partial<SignUpInput>): string[] {
  return refused(changes).map((violation) => violation.field);
}

describe("validateSignUp", () => {
  it("accepts a valid sign-up and returns its normalized values", () => {
    expect(accepted({})).toEqual({
      username: "alice.smith",
      email: "alice@example.com",
      password: "zq8#Lm2!vK",
      phoneNumber: "+15551234567",
      firstName: "Alice",
      lastName: "Smith",
    });
  });

  describe("username", () => {
    it.each([
      ["3 characters", "abc"],
      ["64 characters", "a".repeat(64)],
      ["every allowed character", "Az09._-"],
      ["digits with a dot", "123.45"],
      ["digits with a letter", "007bond"],
    ])("accepts %s", (_label, username) => {
      expect(accepted({ username }).username).toBe(username);
    });

    it.each([
      ["2 characters", "ab"],
      ["65 characters", "a".repeat(65)],
      ["empty", ""],
      ["a space inside", "ab cd"],
      ["an @", "ab@cd"],
      ["a +", "+abcd"],
      ["a non-ASCII letter", "j\u00fcrgen"],
      ["an exclamation mark", "abc!"],
      ["a slash", "ab/cd"],
      ["all digits", "12345"],
      ["all digits, 64 long", "1".repeat(64)],
    ])("refuses %s", (_label, username) => {
      expect(refusedFields({ username })).toEqual(["username"]);
    });

    it("is trimmed before its length is checked", () => {
      expect(accepted({ username: "  abc\u00a0 " }).username).toBe("abc");
      expect(accepted({ username: ` ${"a".repeat(64)} ` }).username).toBe("a".repeat(64));
      expect(refusedFields({ username: "  ab  " })).toEqual(["username"]);
    });

    it("keeps the case the user gave", () => {
      expect(accepted({ username: "Alice.Smith" }).username).toBe("Alice.Smith");
    });
  });

  describe("email", () => {
    const local64 = "a".repeat(64);

    it("accepts 254 characters", () => {
      const email = `${local64}@${"b".repeat(185)}.com`;
      expect(email).toHaveLength(254);
      expect(accepted({ email }).email).toBe(email);
    });

    it("refuses 255 characters", () => {
      const email = `${local64}@${"b".repeat(186)}.com`;
      expect(email).toHaveLength(255);
      expect(refusedFields({ email })).toEqual(["email"]);
    });

    it.each([
      ["empty", ""],
      ["only spaces", "   "],
      ["no @", "alice.example.com"],
      ["two @", "alice@smith@example.com"],
      ["a doubled @", "alice@@example.com"],
      ["no dot in the domain", "alice@localhost"],
      ["a dot only in the local part", "alice.smith@localhost"],
      ["an empty local part", "@example.com"],
      ["an empty domain", "alice@"],
    ])("refuses %s", (_label, email) => {
      expect(refusedFields({ email })).toEqual(["email"]);
    });

    it("is trimmed and keeps its case", () => {
      expect(accepted({ email: "  Alice@Example.COM  " }).email).toBe("Alice@Example.COM");
    });
  });

  describe("phone_number", () => {
    it.each([
      ["spaces", "+1 555 123 4567", "+15551234567"],
      ["dashes", "+1-555-123-4567", "+15551234567"],
      ["dots", "+44.20.7946.0958", "+442079460958"],
      ["parentheses", "+1(555)1234567", "+15551234567"],
      ["all of them", " +1 (555) 123-45.67 ", "+15551234567"],
      ["7 digits", "+1234567", "+1234567"],
      ["15 digits", "+123456789012345", "+123456789012345"],
    ])("removes %s and stores E.164", (_label, phoneNumber, normalized) => {
      expect(accepted({ phoneNumber }).phoneNumber).toBe(normalized);
    });

    it.each([
      ["6 digits", "+123456"],
      ["16 digits", "+1234567890123456"],
      ["a leading 0", "+0123456789"],
      ["no +", "15551234567"],
      ["letters", "+1555abc4567"],
      ["a + alone", "+"],
      ["two +", "++15551234567"],
      ["a slash", "+1555/1234567"],
    ])("refuses %s", (_label, phoneNumber) => {
      expect(refusedFields({ phoneNumber })).toEqual(["phone_number"]);
    });

    it.each([
      ["empty", ""],
      ["blank", "   "],
    ])("is optional: %s means none", (_label, phoneNumber) => {
      expect(accepted({ phoneNumber }).phoneNumber).toBeUndefined();
    });
  });

  describe("password", () => {
    it("accepts 8 and 128 code points", () => {
      expect(accepted({ password: "zq8#Lm2!" }).password).toBe("zq8#Lm2!");
      const long = "zq8#Lm2!".repeat(16);
      expect(long).toHaveLength(128);
      expect(accepted({ password: long }).password).toBe(long);
    });

    it("refuses 7 and 129 code points", () => {
      expect(refusedFields({ password: "zq8#Lm2" })).toEqual(["password"]);
      expect(refusedFields({ password: `${"zq8#Lm2!".repeat(16)}x` })).toEqual(["password"]);
      expect(refusedFields({ password: "" })).toEqual(["password"]);
    });

    it("counts an emoji once (code points, not UTF-16 units)", () => {
      const key = "\u{1F511}";
      // 7 code points but 11 UTF-16 units: too short.
      expect(refusedFields({ password: `${key.repeat(4)}xyz` })).toEqual(["password"]);
      // 128 code points but 256 UTF-16 units: long enough and not too long.
      expect(accepted({ password: key.repeat(128) }).password).toBe(key.repeat(128));
      expect(refusedFields({ password: key.repeat(129) })).toEqual(["password"]);
      // 8 code points: long enough.
      expect(accepted({ password: `${key}zq8#Lm2` }).password).toBe(`${key}zq8#Lm2`);
    });

    it("refuses the username, ignoring case", () => {
      expect(refusedFields({ username: "Alice.Smith", password: "aLICE.sMITH" })).toEqual([
        "password",
      ]);
    });

    it("refuses the username as it is stored (trimmed)", () => {
      expect(refusedFields({ username: "  alice.smith  ", password: "alice.smith" })).toEqual([
        "password",
      ]);
    });

    it("refuses the email, ignoring case", () => {
      expect(refusedFields({ email: "Alice@Example.com", password: "alice@EXAMPLE.COM" })).toEqual([
        "password",
      ]);
    });

    it.each(["password1", "Password1", "PASSWORD1", "12345678", "qwertyuiop"])(
      "refuses the common password %s",
      (password) => {
        expect(refusedFields({ password })).toEqual(["password"]);
      },
    );

    it("refuses U+0000", () => {
      expect(refusedFields({ password: "zq8#Lm2!\u0000" })).toEqual(["password"]);
    });

    it("allows other control characters", () => {
      const password = "zq8#\tLm2!\n\u001f\u0001\r";
      expect(accepted({ password }).password).toBe(password);
    });

    it("is used exactly as given: not trimmed, not normalized", () => {
      const password = "  zq8#Lm2!e\u0301  ";
      expect(accepted({ password }).password).toBe(password);
    });
  });

  describe("first_name and last_name", () => {
    it("accept 255 characters and refuse 256", () => {
      const ok = "n".repeat(255);
      const tooLong = "n".repeat(256);
      expect(accepted({ firstName: ok, lastName: ok })).toMatchObject({
        firstName: ok,
        lastName: ok,
      });
      expect(refusedFields({ firstName: tooLong })).toEqual(["first_name"]);
      expect(refusedFields({ lastName: tooLong })).toEqual(["last_name"]);
    });

    it("are optional", () => {
      expect(accepted({ firstName: "", lastName: "" })).toMatchObject({
        firstName: "",
        lastName: "",
      });
    });

    it("are trimmed and NFC-normalized before their length is checked", () => {
      const value = accepted({ firstName: "  Rene\u0301e ", lastName: " Mu\u0308ller " });
      expect(value.firstName).toBe("Ren\u00e9e");
      expect(value.lastName).toBe("M\u00fcller");
      // 255 decomposed "é" are 510 code points, but 255 once NFC-normalized.
      const decomposed = "e\u0301".repeat(255);
      expect(accepted({ firstName: ` ${decomposed} ` }).firstName).toBe("\u00e9".repeat(255));
    });
  });

  describe("text fields", () => {
    it("NFC-normalizes the email", () => {
      expect(accepted({ email: "jose\u0301@example.com" }).email).toBe("jos\u00e9@example.com");
    });

    const fields = [
      ["username", "username"],
      ["email", "email"],
      ["phoneNumber", "phone_number"],
      ["firstName", "first_name"],
      ["lastName", "last_name"],
    ] as const;
    const controls = [
      ["U+0000", "\u0000"],
      ["U+001F", "\u001f"],
      ["a tab", "\t"],
      ["a newline", "\n"],
    ] as const;
    const cases = fields.flatMap(([key, field]) =>
      controls.map(([label, control]) => [field, label, key, control] as const),
    );

    it.each(cases)("%s refuses %s, inside or at an end", (field, _label, key, control) => {
      const base = VALID[key] === "" ? "x" : VALID[key];
      const middle = Math.floor(base.length / 2);
      const inside = `${base.slice(0, middle)}${control}${base.slice(middle)}`;
      expect(refusedFields({ [key]: inside })).toEqual([field]);
      expect(refusedFields({ [key]: `${base}${control}` })).toEqual([field]);
    });
  });

  it("reports every bad field at once, with snake_case names", () => {
    const violations = refused({
      username: "ab",
      email: "not-an-email",
      password: "short",
      phoneNumber: "12",
      firstName: "f".repeat(256),
      lastName: "l".repeat(256),
    });
    expect(violations.map((violation) => violation.field).sort()).toEqual(
      ["email", "first_name", "last_name", "password", "phone_number", "username"].sort(),
    );
    for (const violation of violations) {
      expect(violation.description).not.toBe("");
    }
  });

  it("reports a control character and another field's violation together", () => {
    expect(refusedFields({ firstName: "A\u0000", password: "password1" }).sort()).toEqual([
      "first_name",
      "password",
    ]);
  });
});

describe("createCommonPasswordCheck", () => {
  it("knows common passwords in any case and not uncommon ones", () => {
    expect(isCommonPassword("password1")).toBe(true);
    expect(isCommonPassword("Password1")).toBe(true);
    expect(isCommonPassword("123456")).toBe(true);
    expect(isCommonPassword("zq8#Lm2!vK")).toBe(false);
  });
});

describe("validateLogin", () => {
  function loginViolations(identifier: string, password: string): string[] {
    const result = validateLogin(identifier, password);
    if (result.ok) {
      throw new Error(`expected refusal of ${JSON.stringify(identifier)}`);
    }
    return result.violations.map((violation) => violation.field);
  }

  it("classifies a trimmed identifier and keeps the password as given", () => {
    expect(validateLogin("  alice.smith  ", " secret pass ")).toEqual({
      ok: true,
      identifier: { kind: "username", value: "alice.smith" },
      password: " secret pass ",
    });
  });

  it("classifies a digits-only identifier as a phone number with + prepended", () => {
    const result = validateLogin(" 15551234567 ", "zq8#Lm2!vK");
    expect(result).toMatchObject({
      ok: true,
      identifier: { kind: "phone_number", value: "+15551234567" },
    });
  });

  it("answers identifier undefined (not a violation) for a malformed phone number", () => {
    const result = validateLogin("+12", "zq8#Lm2!vK");
    expect(result.ok).toBe(true);
    expect(result.ok && result.identifier).toBeUndefined();
  });

  it.each([
    ["empty", ""],
    ["blank", "   "],
    ["U+0000", "alice\u0000"],
    ["U+001F", "ali\u001fce"],
    ["a tab", "alice\tsmith"],
    ["longer than 254 characters", `${"a".repeat(64)}@${"b".repeat(186)}.com`],
  ])("refuses an identifier that is %s", (_label, identifier) => {
    expect(loginViolations(identifier, "zq8#Lm2!vK")).toEqual(["identifier"]);
  });

  it("refuses an empty password, U+0000 and more than 128 code points", () => {
    expect(loginViolations("alice", "")).toEqual(["password"]);
    expect(loginViolations("alice", "zq8#\u0000Lm2!")).toEqual(["password"]);
    expect(loginViolations("alice", "x".repeat(129))).toEqual(["password"]);
  });

  it("allows control characters other than U+0000 in the password", () => {
    expect(validateLogin("alice", "a\tb\u001fc\u0001")).toMatchObject({
      ok: true,
      password: "a\tb\u001fc\u0001",
    });
  });

  it("counts password code points: 128 emoji are allowed", () => {
    expect(validateLogin("alice", "\u{1F511}".repeat(128)).ok).toBe(true);
  });

  it("reports both fields at once", () => {
    expect(loginViolations("", "").sort()).toEqual(["identifier", "password"]);
  });
});

describe("classifyIdentifier", () => {
  it.each([
    ["alice@example.com", { kind: "email", value: "alice@example.com" }],
    ["Alice@Example.COM", { kind: "email", value: "Alice@Example.COM" }],
    ["+15551234567@x.io", { kind: "email", value: "+15551234567@x.io" }],
    ["+1 (555) 123-4567", { kind: "phone_number", value: "+15551234567" }],
    ["+44.20.7946.0958", { kind: "phone_number", value: "+442079460958" }],
    ["15551234567", { kind: "phone_number", value: "+15551234567" }],
    ["1234567", { kind: "phone_number", value: "+1234567" }],
    ["alice", { kind: "username", value: "alice" }],
    ["Alice.Smith-2", { kind: "username", value: "Alice.Smith-2" }],
    ["007bond", { kind: "username", value: "007bond" }],
    ["123.45", { kind: "username", value: "123.45" }],
  ])("classifies %s", (text, identifier) => {
    expect(classifyIdentifier(text)).toEqual(identifier);
  });

  it.each([
    ["too short", "+12"],
    ["too short without +", "123456"],
    ["too long", "1234567890123456"],
    ["a leading 0", "0123456789"],
    ["a leading 0 after +", "+0123456789"],
    ["letters after +", "+1555abc"],
    ["a + alone", "+"],
  ])("answers undefined for a malformed phone number: %s", (_label, text) => {
    expect(classifyIdentifier(text)).toBeUndefined();
  });
});

import type { FieldViolation } from "../auth-error.js";
import type { Identifier } from "./user.js";

/** C0 control characters and DEL: never allowed in a text field. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
const USERNAME = /^[A-Za-z0-9._-]{3,64}$/;
const ALL_DIGITS = /^[0-9]+$/;
const E164 = /^\+[1-9][0-9]{6,14}$/;
/** Phone number punctuation removed before the E.164 check. */
const PHONE_PUNCTUATION = /[\s.()-]/g;
const EMAIL_MAX_LENGTH = 254;
const NAME_MAX_LENGTH = 255;
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

/** Trimmed and NFC-normalized, as every text field is stored. */
export function normalizeText(text: string): string {
  return text.trim().normalize("NFC");
}

/** Length in code points, not UTF-16 units, so an emoji counts once. */
function codePointLength(text: string): number {
  let length = 0;
  for (const _ of text) {
    length++;
  }
  return length;
}

/** Removes phone punctuation; the result is E.164 or undefined. */
export function normalizePhoneNumber(text: string): string | undefined {
  const compact = text.replace(PHONE_PUNCTUATION, "");
  return E164.test(compact) ? compact : undefined;
}

export function isValidEmail(email: string): boolean {
  if (email.length > EMAIL_MAX_LENGTH || /\s/.test(email)) {
    return false;
  }
  const parts = email.split("@");
  if (parts.length !== 2) {
    return false;
  }
  const [local = "", domain = ""] = parts;
  return (
    local.length > 0 &&
    domain.includes(".") &&
    !domain.startsWith(".") &&
    !domain.endsWith(".") &&
    !domain.includes("..")
  );
}

export interface SignUpInput {
  username: string;
  email: string;
  password: string;
  phoneNumber: string;
  firstName: string;
  lastName: string;
}

export interface ValidSignUp {
  username: string;
  email: string;
  password: string;
  phoneNumber: string | undefined;
  firstName: string;
  lastName: string;
}

export type SignUpValidation =
  | { ok: true; value: ValidSignUp }
  | { ok: false; violations: FieldViolation[] };

/**
 * Checks every rule of DESIGN.md §3 and §4b and reports every bad field, not just
 * the first. `isCommonPassword` is passed in so this stays free of I/O and data.
 */
export function validateSignUp(
  input: SignUpInput,
  isCommonPassword: (password: string) => boolean,
): SignUpValidation {
  const violations: FieldViolation[] = [];
  const violate = (field: string, description: string) => violations.push({ field, description });

  const rawText = {
    username: input.username,
    email: input.email,
    phone_number: input.phoneNumber,
    first_name: input.firstName,
    last_name: input.lastName,
  };
  // A field with control characters gets that one violation, not its format's too.
  const dirty = new Set(
    Object.entries(rawText)
      .filter(([, value]) => CONTROL_CHARACTERS.test(value))
      .map(([field]) => field),
  );
  for (const field of dirty) {
    violate(field, "must not contain control characters");
  }
  const clean = (field: keyof typeof rawText) => !dirty.has(field);

  const username = normalizeText(input.username);
  if (clean("username")) {
    if (!USERNAME.test(username)) {
      violate("username", "must be 3 to 64 characters of letters, digits, '.', '_' and '-'");
    } else if (ALL_DIGITS.test(username)) {
      violate("username", "must not be all digits");
    }
  }

  const email = normalizeText(input.email);
  if (clean("email")) {
    if (email === "") {
      violate("email", "is required");
    } else if (!isValidEmail(email)) {
      violate("email", "must be an email address of at most 254 characters");
    }
  }

  const phoneText = normalizeText(input.phoneNumber);
  let phoneNumber: string | undefined;
  if (clean("phone_number") && phoneText !== "") {
    phoneNumber = normalizePhoneNumber(phoneText);
    if (phoneNumber === undefined) {
      violate("phone_number", "must be in E.164 form: '+' and 7 to 15 digits, not starting with 0");
    }
  }

  const firstName = normalizeText(input.firstName);
  const lastName = normalizeText(input.lastName);
  if (clean("first_name") && codePointLength(firstName) > NAME_MAX_LENGTH) {
    violate("first_name", "must be at most 255 characters");
  }
  if (clean("last_name") && codePointLength(lastName) > NAME_MAX_LENGTH) {
    violate("last_name", "must be at most 255 characters");
  }

  const password = input.password;
  const passwordLength = codePointLength(password);
  if (password.includes("\u0000")) {
    violate("password", "must not contain U+0000");
  } else if (passwordLength < PASSWORD_MIN_LENGTH || passwordLength > PASSWORD_MAX_LENGTH) {
    violate("password", "must be 8 to 128 characters");
  } else if (
    password.toLowerCase() === username.toLowerCase() ||
    password.toLowerCase() === email.toLowerCase()
  ) {
    violate("password", "must not be the username or the email");
  } else if (isCommonPassword(password)) {
    violate("password", "is too common");
  }

  if (violations.length > 0) {
    return { ok: false, violations };
  }
  return { ok: true, value: { username, email, password, phoneNumber, firstName, lastName } };
}

export type LoginValidation =
  | { ok: true; identifier: Identifier | undefined; password: string }
  | { ok: false; violations: FieldViolation[] };

/**
 * Checks a login request's shape and classifies the identifier: contains "@" → email;
 * starts with "+" or is all digits → phone number ("+" prepended to bare digits);
 * otherwise username. An identifier that cannot name any user (a malformed phone
 * number, say) yields `identifier: undefined`: the caller answers INVALID_CREDENTIALS
 * at the cost of a real check, so its shape reveals nothing.
 */
export function validateLogin(identifierText: string, password: string): LoginValidation {
  const violations: FieldViolation[] = [];
  const text = normalizeText(identifierText);
  if (CONTROL_CHARACTERS.test(identifierText)) {
    violations.push({ field: "identifier", description: "must not contain control characters" });
  } else if (text === "") {
    violations.push({ field: "identifier", description: "is required" });
  } else if (text.length > EMAIL_MAX_LENGTH) {
    violations.push({ field: "identifier", description: "must be at most 254 characters" });
  }
  if (password === "") {
    violations.push({ field: "password", description: "is required" });
  } else if (password.includes("\u0000")) {
    violations.push({ field: "password", description: "must not contain U+0000" });
  } else if (codePointLength(password) > PASSWORD_MAX_LENGTH) {
    violations.push({ field: "password", description: "must be at most 128 characters" });
  }
  if (violations.length > 0) {
    return { ok: false, violations };
  }
  return { ok: true, identifier: classifyIdentifier(text), password };
}

/** See validateLogin; exported for its unit tests. */
export function classifyIdentifier(text: string): Identifier | undefined {
  if (text.includes("@")) {
    return { kind: "email", value: text };
  }
  if (text.startsWith("+") || ALL_DIGITS.test(text)) {
    const phoneNumber = normalizePhoneNumber(text.startsWith("+") ? text : `+${text}`);
    return phoneNumber === undefined ? undefined : { kind: "phone_number", value: phoneNumber };
  }
  return { kind: "username", value: text };
}

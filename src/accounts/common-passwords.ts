import { dictionary } from "@zxcvbn-ts/language-common";

/** DESIGN.md §3: passwords among the 10,000 most common are refused. */
export const COMMON_PASSWORD_COUNT = 10_000;

/**
 * The 10,000 most common passwords, from zxcvbn-ts's maintained list (ordered by
 * frequency, lowercase). A password is compared in lower case, so "Password1" counts too.
 */
export function createCommonPasswordCheck(): (password: string) => boolean {
  const list = dictionary["passwords-common"] as readonly string[];
  const common = new Set(list.slice(0, COMMON_PASSWORD_COUNT));
  return (password) => common.has(password.toLowerCase());
}

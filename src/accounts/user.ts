/** A user account as the domain sees it; the password hash lives only in storage. */
export interface User {
  id: string;
  username: string;
  email: string;
  /** E.164, or undefined when none was given. */
  phoneNumber: string | undefined;
  firstName: string;
  lastName: string;
  createTime: Date;
}

/** Which column a login identifier names (DESIGN.md §3, "Login identifier"). */
export type IdentifierKind = "username" | "email" | "phone_number";

export interface Identifier {
  kind: IdentifierKind;
  /** Trimmed, NFC-normalized; phone numbers in E.164. */
  value: string;
}

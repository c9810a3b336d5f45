/** A failure the operator can act on; its message is printed as it is, with no stack. */
export class CliError extends Error {
  override readonly name = "CliError";
}

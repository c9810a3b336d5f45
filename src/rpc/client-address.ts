import { isIP } from "node:net";
import type { CallContext } from "./handler.js";

/** An IPv4 client seen on a dual-stack socket ("::ffff:10.0.0.1") is the IPv4 address. */
function plainAddress(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/**
 * The client's address: the socket's peer or, behind a proxy we trust (TRUST_PROXY),
 * the first `x-forwarded-for` hop, which is the client as the outermost proxy saw it.
 * A hop that is not an IP address is ignored: the header is the client's to forge.
 */
export function clientAddress(context: CallContext, trustProxy: boolean): string {
  if (trustProxy) {
    const firstHop = context.requestHeader("x-forwarded-for")?.split(",")[0]?.trim() ?? "";
    if (isIP(firstHop) !== 0) {
      return plainAddress(firstHop);
    }
  }
  return plainAddress(context.peerAddress);
}

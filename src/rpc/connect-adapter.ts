import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { type ConnectRouter, createContextKey, type HandlerContext } from "@connectrpc/connect";
import { toConnectError } from "./errors.js";
import {
  handlerFor,
  type InternalErrorListener,
  type ServiceHandlers,
  unaryMethods,
} from "./handler.js";

/** The client's IP address, set per request by the connect-node adapter's `contextValues`. */
export const peerAddressKey = createContextKey<string>("", { description: "client IP address" });

/** Binds handlers to a Connect router (Connect, gRPC and gRPC-Web protocols). */
export function addConnectService<S extends DescService>(
  router: ConnectRouter,
  service: S,
  handlers: ServiceHandlers<S>,
  onInternalError: InternalErrorListener,
): void {
  for (const method of unaryMethods(service)) {
    const handler = handlerFor(handlers, method);
    const procedure = `/${service.typeName}/${method.name}`;
    router.rpc(method, async (request: MessageShape<DescMessage>, context: HandlerContext) => {
      try {
        return await handler(request, {
          requestHeader: (name) => context.requestHeader.get(name) ?? undefined,
          peerAddress: context.values.get(peerAddressKey),
          signal: context.signal,
          server: "connect",
          setResponseHeader: (name, value) => context.responseHeader.set(name, value),
        });
      } catch (error) {
        throw toConnectError(error, (cause) => onInternalError(cause, procedure));
      }
    });
  }
}

import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { type ConnectRouter, createContextKey, type HandlerContext } from "@connectrpc/connect";
import { toConnectError } from "./errors.js";
import {
  type CallContext,
  handlerFor,
  type InternalErrorListener,
  type ServiceHandlers,
  servedMethods,
} from "./handler.js";

/** The client's IP address, set per request by the connect-node adapter's `contextValues`. */
export const peerAddressKey = createContextKey<string>("", { description: "client IP address" });

function callContext(context: HandlerContext): CallContext {
  return {
    requestHeader: (name) => context.requestHeader.get(name) ?? undefined,
    peerAddress: context.values.get(peerAddressKey),
    signal: context.signal,
    server: "connect",
    setResponseHeader: (name, value) => context.responseHeader.set(name, value),
  };
}

/** Binds handlers to a Connect router (Connect, gRPC and gRPC-Web protocols). */
export function addConnectService<S extends DescService>(
  router: ConnectRouter,
  service: S,
  handlers: ServiceHandlers<S>,
  onInternalError: InternalErrorListener,
): void {
  for (const method of servedMethods(service)) {
    const procedure = `/${service.typeName}/${method.name}`;
    const toError = (error: unknown) =>
      toConnectError(error, (cause) => onInternalError(cause, procedure));
    if (method.methodKind === "server_streaming") {
      const handler = handlerFor(handlers, method);
      router.rpc(method, async function* (request: MessageShape<DescMessage>, context) {
        try {
          yield* handler(request, callContext(context));
        } catch (error) {
          throw toError(error);
        }
      });
      continue;
    }
    const handler = handlerFor(handlers, method);
    router.rpc(method, async (request: MessageShape<DescMessage>, context: HandlerContext) => {
      try {
        return await handler(request, callContext(context));
      } catch (error) {
        throw toError(error);
      }
    });
  }
}

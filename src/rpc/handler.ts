import type {
  DescMessage,
  DescMethodUnary,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";

/** What a handler may know about its call, the same on grpc-js and connect-node. */
export interface CallContext {
  /** A request header (gRPC metadata) by lower-case name; the first value. */
  requestHeader(name: string): string | undefined;
  /** The client's IP address as the socket sees it. */
  peerAddress: string;
  /** Aborted when the client cancels or its deadline passes. */
  signal: AbortSignal;
  /** Which server took the call: grpc-js (PORT) or connect-node (HTTP_PORT). */
  server: "grpc" | "connect";
  /** Sets a response header (gRPC initial metadata), sent with the answer or the error. */
  setResponseHeader(name: string, value: string): void;
}

export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => Promise<MessageInitShape<O>>;

/** One handler per RPC of a service, written once and bound to both servers. */
export type ServiceHandlers<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? UnaryHandler<I, O>
    : never;
};

/** Called with an error that is not the client's doing, before it is answered as INTERNAL. */
export type InternalErrorListener = (error: unknown, procedure: string) => void;

/** The handler of one method, typed loosely for the adapters that iterate a service's methods. */
export function handlerFor(
  handlers: ServiceHandlers<DescService>,
  method: DescMethodUnary,
): UnaryHandler<DescMessage, DescMessage> {
  const handler = (handlers as Record<string, UnaryHandler<DescMessage, DescMessage> | undefined>)[
    method.localName
  ];
  if (handler === undefined) {
    throw new Error(`no handler for ${method.parent.typeName}/${method.name}`);
  }
  return handler;
}

/** The unary methods of a service: the only kind AuthService has. */
export function unaryMethods(service: DescService): DescMethodUnary[] {
  return service.methods.filter(
    (method): method is DescMethodUnary => method.methodKind === "unary",
  );
}

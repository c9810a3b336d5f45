import type {
  DescMessage,
  DescMethodServerStreaming,
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

/**
 * A server-streaming handler: each value the iterable yields is one response message.
 * The stream ends when the iterable does; it should end once `context.signal` aborts.
 */
export type ServerStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  context: CallContext,
) => AsyncIterable<MessageInitShape<O>>;

/** One handler per RPC of a service, written once and bound to both servers. */
export type ServiceHandlers<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? UnaryHandler<I, O>
    : S["method"][K] extends DescMethodServerStreaming<infer I, infer O>
      ? ServerStreamingHandler<I, O>
      : never;
};

/** Called with an error that is not the client's doing, before it is answered as INTERNAL. */
export type InternalErrorListener = (error: unknown, procedure: string) => void;

/** The kinds of method the adapters bind: unary and server streaming. */
export type ServedMethod = DescMethodUnary | DescMethodServerStreaming;

/** The handler of one method, typed loosely for the adapters that iterate a service's methods. */
export function handlerFor(
  handlers: ServiceHandlers<DescService>,
  method: DescMethodUnary,
): UnaryHandler<DescMessage, DescMessage>;
export function handlerFor(
  handlers: ServiceHandlers<DescService>,
  method: DescMethodServerStreaming,
): ServerStreamingHandler<DescMessage, DescMessage>;
export function handlerFor(handlers: ServiceHandlers<DescService>, method: ServedMethod): unknown {
  const handler = (handlers as Record<string, unknown>)[method.localName];
  if (typeof handler !== "function") {
    throw new Error(`no handler for ${method.parent.typeName}/${method.name}`);
  }
  return handler;
}

/** The methods the adapters can bind; client- and bidi-streaming ones are refused. */
export function servedMethods(service: DescService): ServedMethod[] {
  const served = service.methods.filter(
    (method): method is ServedMethod =>
      method.methodKind === "unary" || method.methodKind === "server_streaming",
  );
  if (served.length !== service.methods.length) {
    throw new Error(`${service.typeName} has client- or bidi-streaming methods`);
  }
  return served;
}

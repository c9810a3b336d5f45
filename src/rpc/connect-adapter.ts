import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { type ConnectRouter, createContextKey, type HandlerContext } from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerResponse } from "@connectrpc/connect/protocol";
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

/** What connect-es says when a request message is not valid binary protobuf. */
const PARSE_BINARY_FAILURE = "parse binary:";
const DECODE_FAILURE_MESSAGE = "the request message cannot be decoded";
const GRPC_TRAILER_FLAG = 0x80;

function isParseFailure(code: string | null, message: string | null): boolean {
  return (code === "13" || code === "internal") && (message ?? "").startsWith(PARSE_BINARY_FAILURE);
}

/** A gRPC-Web trailer frame that reports a parse failure, rewritten to INVALID_ARGUMENT. */
function rewriteGrpcWebTrailer(chunk: Uint8Array): Uint8Array {
  if (chunk.length < 5 || (chunk[0] ?? 0) !== GRPC_TRAILER_FLAG) {
    return chunk;
  }
  const fields = new Headers(
    Buffer.from(chunk.subarray(5))
      .toString("latin1")
      .split("\r\n")
      .filter((line) => line.includes(":"))
      .map((line) => [
        line.slice(0, line.indexOf(":")).trim(),
        line.slice(line.indexOf(":") + 1).trim(),
      ]),
  );
  const message = decodeURIComponent(fields.get("grpc-message") ?? "");
  if (!isParseFailure(fields.get("grpc-status"), message)) {
    return chunk;
  }
  const text = Buffer.from(
    `grpc-status: 3\r\ngrpc-message: ${encodeURIComponent(DECODE_FAILURE_MESSAGE)}\r\n`,
    "latin1",
  );
  const frame = Buffer.alloc(5 + text.length);
  frame[0] = GRPC_TRAILER_FLAG;
  frame.writeUInt32BE(text.length, 1);
  text.copy(frame, 5);
  return frame;
}

/**
 * The same answer on the Connect port as on the gRPC port for a request message that cannot be
 * decoded: connect-es answers INVALID_ARGUMENT for bad JSON but INTERNAL for bad binary
 * protobuf, on all three protocols, before any handler runs. This rewrites that one answer.
 */
async function decodeFailureAsInvalidArgument(
  response: UniversalServerResponse,
): Promise<UniversalServerResponse> {
  const { body, header, trailer } = response;
  if (body === undefined) {
    return response;
  }
  if (
    response.status === 500 &&
    header?.get("content-type") === "application/json" &&
    !header.has("content-encoding")
  ) {
    // Connect unary: the error is the JSON body of a 500.
    const chunks: Uint8Array[] = [];
    for await (const chunk of body) {
      chunks.push(chunk);
    }
    const bytes = Buffer.concat(chunks);
    const error = JSON.parse(bytes.toString("utf8")) as { code?: string; message?: string };
    if (!isParseFailure(error.code ?? null, error.message ?? null)) {
      return { ...response, body: once(bytes) };
    }
    const replaced = Buffer.from(
      JSON.stringify({ code: "invalid_argument", message: DECODE_FAILURE_MESSAGE }),
    );
    header.set("content-length", String(replaced.length));
    return { ...response, status: 400, body: once(replaced) };
  }
  // gRPC: the status travels in trailers, set once the body ends; gRPC-Web: in a last frame.
  return {
    ...response,
    body: (async function* () {
      for await (const chunk of body) {
        yield rewriteGrpcWebTrailer(chunk);
      }
      const message = decodeURIComponent(trailer?.get("grpc-message") ?? "");
      if (trailer && isParseFailure(trailer.get("grpc-status"), message)) {
        trailer.set("grpc-status", "3");
        trailer.set("grpc-message", encodeURIComponent(DECODE_FAILURE_MESSAGE));
      }
    })(),
  };
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

/** Wraps every handler of the router with decodeFailureAsInvalidArgument; call after adding services. */
export function answerDecodeFailuresAsInvalidArgument(router: ConnectRouter): void {
  router.handlers.forEach((handler, index) => {
    const wrapped: UniversalHandler = Object.assign(
      async (request: Parameters<UniversalHandler>[0]) =>
        decodeFailureAsInvalidArgument(await handler(request)),
      handler,
    );
    router.handlers[index] = wrapped;
  });
}

import { create, type DescService, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { grpcStatusDetails, toConnectError } from "./errors.js";
import {
  type CallContext,
  handlerFor,
  type InternalErrorListener,
  type ServedMethod,
  type ServiceHandlers,
  servedMethods,
} from "./handler.js";

// biome-ignore lint/suspicious/noExplicitAny: grpc-js types definitions per message type; ours are built at run time
type MethodDefinitions = Record<string, grpc.MethodDefinition<any, any>>;

function path(method: ServedMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/**
 * A grpc-js client definition for a protobuf-es service: method names are the
 * generated `localName`s (`signUp`, `login`, …). For tests and other services' clients.
 */
export function grpcClientDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: MethodDefinitions = {};
  for (const method of servedMethods(service)) {
    definition[method.localName] = {
      path: path(method),
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: (message) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: (bytes) => fromBinary(method.input, bytes),
      responseSerialize: (message) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/** A grpc-js error status whose metadata carries the google.rpc.Status for rich-error clients. */
export function grpcErrorResponse(error: ConnectError): grpc.ServerErrorResponse {
  const metadata = new grpc.Metadata();
  if (error.details.length > 0) {
    metadata.set("grpc-status-details-bin", Buffer.from(grpcStatusDetails(error)));
  }
  return Object.assign(new Error(error.rawMessage), {
    code: error.code as number as grpc.status,
    details: error.rawMessage,
    metadata,
  });
}

/**
 * A call's context. Its abort signal is made only when a handler reads it: most calls never
 * do, and grpc-js reports "cancelled" when any stream closes, finished or not, so `finish`
 * drops the listener once the answer is on its way.
 */
function callContext(
  call: grpc.ServerUnaryCall<Buffer, unknown> | grpc.ServerWritableStream<Buffer, unknown>,
  responseMetadata: grpc.Metadata,
): { context: CallContext; finish(): void } {
  let controller: AbortController | undefined;
  // grpc-js emits "cancelled" when the client cancels and also when the deadline passes
  // (it answers DEADLINE_EXCEEDED itself): either way nobody waits for the answer any more.
  const onCancelled = () => controller?.abort();
  const context: CallContext = {
    requestHeader(name) {
      const value = call.metadata.get(name)[0];
      return typeof value === "string" ? value : undefined;
    },
    // grpc-js gives "ip:port" or "[ipv6]:port".
    get peerAddress() {
      return call
        .getPeer()
        .replace(/:\d+$/, "")
        .replace(/^\[(.*)\]$/, "$1");
    },
    get signal() {
      if (controller === undefined) {
        controller = new AbortController();
        if (call.cancelled) {
          controller.abort();
        } else {
          call.once("cancelled", onCancelled);
        }
      }
      return controller.signal;
    },
    server: "grpc",
    setResponseHeader: (name, value) => responseMetadata.set(name, value),
  };
  return { context, finish: () => call.off("cancelled", onCancelled) };
}

function decodeRequest(method: ServedMethod, bytes: Buffer) {
  try {
    return fromBinary(method.input, bytes);
  } catch (error) {
    throw new ConnectError(
      "the request message cannot be decoded",
      Code.InvalidArgument,
      undefined,
      undefined,
      error,
    );
  }
}

/** Writes a message, waiting while the client reads slower than we write. */
async function writeMessage(call: grpc.ServerWritableStream<Buffer, unknown>, message: unknown) {
  if (!call.write(message)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        call.off("drain", done);
        call.off("cancelled", done);
        resolve();
      };
      call.on("drain", done);
      call.on("cancelled", done);
    });
  }
}

/**
 * Binds handlers to a grpc-js server. Requests arrive as raw bytes and are decoded
 * here, so a malformed message is the client's INVALID_ARGUMENT, not grpc-js's INTERNAL.
 */
export function addGrpcService<S extends DescService>(
  server: grpc.Server,
  service: S,
  handlers: ServiceHandlers<S>,
  onInternalError: InternalErrorListener,
): void {
  const definition: MethodDefinitions = {};
  const implementation: grpc.UntypedServiceImplementation = {};
  for (const method of servedMethods(service)) {
    const procedure = path(method);
    const toStatus = (error: unknown) =>
      grpcErrorResponse(toConnectError(error, (cause) => onInternalError(cause, procedure)));
    // A handler that answers with the same message object again (Verify, for a cached
    // token) gets it encoded once; entries go when the message is collected.
    const encoded = new WeakMap<object, Buffer>();
    definition[method.localName] = {
      path: procedure,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: (bytes: Buffer) => bytes,
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize(message) {
        let bytes = encoded.get(message);
        if (bytes === undefined) {
          bytes = Buffer.from(toBinary(method.output, message));
          encoded.set(message, bytes);
        }
        return bytes;
      },
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
    };
    if (method.methodKind === "server_streaming") {
      const handler = handlerFor(handlers, method);
      const serverStreaming: grpc.handleServerStreamingCall<Buffer, unknown> = (call) => {
        const run = async () => {
          const { context } = callContext(call, responseMetadata);
          for await (const message of handler(decodeRequest(method, call.request), context)) {
            if (context.signal.aborted) {
              return;
            }
            sendHeaders();
            await writeMessage(call, create(method.output, message));
          }
        };
        // Response headers go out once, before the first message (or the end).
        const responseMetadata = new grpc.Metadata();
        let headersSent = false;
        const sendHeaders = () => {
          if (!headersSent) {
            headersSent = true;
            call.sendMetadata(responseMetadata);
          }
        };
        run().then(
          () => {
            sendHeaders();
            call.end();
          },
          (error: unknown) => {
            sendHeaders();
            call.emit("error", toStatus(error));
          },
        );
      };
      implementation[method.localName] = serverStreaming;
      continue;
    }
    const handler = handlerFor(handlers, method);
    const unary: grpc.handleUnaryCall<Buffer, unknown> = (call, callback) => {
      const responseMetadata = new grpc.Metadata();
      const { context, finish } = callContext(call, responseMetadata);
      const run = async () =>
        create(method.output, await handler(decodeRequest(method, call.request), context));
      run().then(
        (response) => {
          finish();
          call.sendMetadata(responseMetadata);
          callback(null, response);
        },
        (error: unknown) => {
          finish();
          call.sendMetadata(responseMetadata);
          callback(toStatus(error));
        },
      );
    };
    implementation[method.localName] = unary;
  }
  server.addService(definition, implementation);
}

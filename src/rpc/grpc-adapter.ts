import {
  create,
  type DescMethodUnary,
  type DescService,
  fromBinary,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { grpcStatusDetails, toConnectError } from "./errors.js";
import {
  type CallContext,
  handlerFor,
  type InternalErrorListener,
  type ServiceHandlers,
  unaryMethods,
} from "./handler.js";

// biome-ignore lint/suspicious/noExplicitAny: grpc-js types definitions per message type; ours are built at run time
type MethodDefinitions = Record<string, grpc.MethodDefinition<any, any>>;

function path(method: DescMethodUnary): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/**
 * A grpc-js client definition for a protobuf-es service: method names are the
 * generated `localName`s (`signUp`, `login`, …). For tests and other services' clients.
 */
export function grpcClientDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: MethodDefinitions = {};
  for (const method of unaryMethods(service)) {
    definition[method.localName] = {
      path: path(method),
      requestStream: false,
      responseStream: false,
      requestSerialize: (message) => Buffer.from(toBinary(method.input, message)),
      requestDeserialize: (bytes) => fromBinary(method.input, bytes),
      responseSerialize: (message) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
    };
  }
  return definition;
}

/** grpc-js metadata carrying the error's google.rpc.Status for rich-error clients. */
function errorResponse(error: ConnectError): grpc.ServerErrorResponse {
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

function callContext(
  call: grpc.ServerUnaryCall<Buffer, unknown>,
  responseMetadata: grpc.Metadata,
): CallContext {
  const controller = new AbortController();
  call.once("cancelled", () => controller.abort());
  return {
    requestHeader(name) {
      const value = call.metadata.get(name)[0];
      return typeof value === "string" ? value : undefined;
    },
    // grpc-js gives "ip:port" or "[ipv6]:port".
    peerAddress: call
      .getPeer()
      .replace(/:\d+$/, "")
      .replace(/^\[(.*)\]$/, "$1"),
    signal: controller.signal,
    server: "grpc",
    setResponseHeader: (name, value) => responseMetadata.set(name, value),
  };
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
  for (const method of unaryMethods(service)) {
    const handler = handlerFor(handlers, method);
    const procedure = path(method);
    definition[method.localName] = {
      path: procedure,
      requestStream: false,
      responseStream: false,
      requestSerialize: (bytes: Buffer) => bytes,
      requestDeserialize: (bytes: Buffer) => bytes,
      responseSerialize: (message) => Buffer.from(toBinary(method.output, message)),
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
    };
    const unary: grpc.handleUnaryCall<Buffer, unknown> = (call, callback) => {
      const responseMetadata = new grpc.Metadata();
      const run = async () => {
        let request: ReturnType<typeof fromBinary>;
        try {
          request = fromBinary(method.input, call.request);
        } catch (error) {
          throw new ConnectError(
            "the request message cannot be decoded",
            Code.InvalidArgument,
            undefined,
            undefined,
            error,
          );
        }
        return create(method.output, await handler(request, callContext(call, responseMetadata)));
      };
      run().then(
        (response) => {
          call.sendMetadata(responseMetadata);
          callback(null, response);
        },
        (error: unknown) => {
          call.sendMetadata(responseMetadata);
          callback(
            errorResponse(toConnectError(error, (cause) => onInternalError(cause, procedure))),
          );
        },
      );
    };
    implementation[method.localName] = unary;
  }
  server.addService(definition, implementation);
}

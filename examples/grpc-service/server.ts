// An example grpc-js service protected by auth-service's grpc-js interceptor. Run it with
//   AUTH_SERVICE_URL=http://127.0.0.1:50051 PORT=50061 npx tsx examples/grpc-service/server.ts
// Outside this repository, import from "auth-service/interceptors" instead of the source path.
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import {
  type GreetRequest,
  GreetRequestSchema,
  type GreetResponse,
  GreetResponseSchema,
  GreetService,
  type PingRequest,
  PingRequestSchema,
  type PingResponse,
  PingResponseSchema,
} from "../../gen/greet/v1/greet_pb.js";
import { createGrpcAuthInterceptor, type TokenChecker } from "../../src/interceptors/index.js";

/** grpc-js wants (de)serializers per method; protobuf-es provides them. */
export const greetServiceDefinition = {
  greet: {
    path: `/${GreetService.typeName}/Greet`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (message: GreetRequest) => Buffer.from(toBinary(GreetRequestSchema, message)),
    requestDeserialize: (bytes: Buffer) => fromBinary(GreetRequestSchema, bytes),
    responseSerialize: (message: GreetResponse) =>
      Buffer.from(toBinary(GreetResponseSchema, message)),
    responseDeserialize: (bytes: Buffer) => fromBinary(GreetResponseSchema, bytes),
  },
  ping: {
    path: `/${GreetService.typeName}/Ping`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (message: PingRequest) => Buffer.from(toBinary(PingRequestSchema, message)),
    requestDeserialize: (bytes: Buffer) => fromBinary(PingRequestSchema, bytes),
    responseSerialize: (message: PingResponse) =>
      Buffer.from(toBinary(PingResponseSchema, message)),
    responseDeserialize: (bytes: Buffer) => fromBinary(PingResponseSchema, bytes),
  },
} satisfies grpc.ServiceDefinition;

export interface GrpcGreeterOptions {
  /** auth-service's gRPC address, e.g. "http://127.0.0.1:50051". */
  authServiceUrl: string;
  /** A shared token checker (tests pass one to wait until it is ready). */
  checker?: TokenChecker;
  /** Stops the interceptor's background work. */
  signal?: AbortSignal;
}

/** The example's grpc-js server, not yet bound. */
export function createGrpcGreeter(options: GrpcGreeterOptions): grpc.Server {
  const auth = createGrpcAuthInterceptor({
    transport: createGrpcTransport({ baseUrl: options.authServiceUrl }),
    ...(options.checker ? { checker: options.checker } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    publicMethods: [`/${GreetService.typeName}/Ping`],
  });
  const server = new grpc.Server({ interceptors: [auth.interceptor] });
  server.addService(greetServiceDefinition, {
    greet(
      call: grpc.ServerUnaryCall<GreetRequest, GreetResponse>,
      callback: grpc.sendUnaryData<GreetResponse>,
    ) {
      // The interceptor ran first: a call without a valid token never gets here.
      const principal = auth.principal(call);
      callback(
        null,
        create(GreetResponseSchema, {
          greeting: `Hello, ${principal?.username}`,
          userId: principal?.userId ?? "",
        }),
      );
    },
    ping(
      _call: grpc.ServerUnaryCall<PingRequest, PingResponse>,
      callback: grpc.sendUnaryData<PingResponse>,
    ) {
      callback(null, create(PingResponseSchema));
    },
  });
  return server;
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const port = Number(process.env.PORT ?? 50061);
  createGrpcGreeter({
    authServiceUrl: process.env.AUTH_SERVICE_URL ?? "http://127.0.0.1:50051",
  }).bindAsync(`0.0.0.0:${port}`, grpc.ServerCredentials.createInsecure(), () =>
    console.log(`greeter (grpc-js) on :${port}`),
  );
}

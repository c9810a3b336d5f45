// An example Connect service protected by auth-service's Connect interceptor. Run it with
//   AUTH_SERVICE_URL=http://127.0.0.1:50051 PORT=8081 npx tsx examples/connect-service/server.ts
// Outside this repository, import from "auth-service/interceptors" instead of the source path.
import http from "node:http";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter, createGrpcTransport } from "@connectrpc/connect-node";
import { GreetService } from "../../gen/greet/v1/greet_pb.js";
import {
  createAuthInterceptor,
  principalKey,
  type TokenChecker,
} from "../../src/interceptors/index.js";

function routes(router: ConnectRouter) {
  router.service(GreetService, {
    greet(_request, context) {
      // The interceptor ran first: a call without a valid token never gets here.
      const principal = context.values.get(principalKey);
      return { greeting: `Hello, ${principal?.username}`, userId: principal?.userId ?? "" };
    },
    ping: () => ({}),
  });
}

export interface ConnectGreeterOptions {
  /** auth-service's gRPC address, e.g. "http://127.0.0.1:50051". */
  authServiceUrl: string;
  /** A shared token checker (tests pass one to wait until it is ready). */
  checker?: TokenChecker;
  /** Stops the interceptor's background work. */
  signal?: AbortSignal;
}

/** The example's HTTP server, not yet listening. */
export function createConnectGreeter(options: ConnectGreeterOptions): http.Server {
  const interceptor = createAuthInterceptor({
    transport: createGrpcTransport({ baseUrl: options.authServiceUrl }),
    ...(options.checker ? { checker: options.checker } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
    publicMethods: [`/${GreetService.typeName}/Ping`],
  });
  return http.createServer(connectNodeAdapter({ routes, interceptors: [interceptor] }));
}

if (process.argv[1] === new URL(import.meta.url).pathname) {
  const port = Number(process.env.PORT ?? 8081);
  createConnectGreeter({
    authServiceUrl: process.env.AUTH_SERVICE_URL ?? "http://127.0.0.1:50051",
  }).listen(port, () => console.log(`greeter (Connect) on :${port}`));
}

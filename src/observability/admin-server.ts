import http from "node:http";
import type { Registry } from "prom-client";
import { listenOn } from "../server.js";

export interface AdminServerOptions {
  registry: Registry;
  /** Readiness: true while the service can answer, i.e. its database answers. */
  isReady: () => Promise<boolean>;
}

export interface AdminServer {
  /** Starts listening; resolves with the port bound. */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The admin port: `/metrics` (Prometheus text), `/healthz` (liveness: the process answers)
 * and `/readyz` (readiness: the database answers). Kept off the service ports so that
 * they are never exposed to clients by accident.
 */
export function createAdminServer({ registry, isReady }: AdminServerOptions): AdminServer {
  const server = http.createServer(async (request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    try {
      switch (path) {
        case "/metrics": {
          const body = await registry.metrics();
          response.writeHead(200, { "content-type": registry.contentType }).end(body);
          return;
        }
        case "/healthz":
          response.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
          return;
        case "/readyz": {
          const ready = await isReady();
          response
            .writeHead(ready ? 200 : 503, { "content-type": "text/plain" })
            .end(ready ? "ready\n" : "database unreachable\n");
          return;
        }
        default:
          response.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      }
    } catch {
      response.writeHead(500, { "content-type": "text/plain" }).end("error\n");
    }
  });
  return {
    listen: (host, port) => listenOn(server, host, port),
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

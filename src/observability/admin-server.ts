import http from "node:http";
import type { Registry } from "prom-client";
import { listenOn } from "../server.js";

export interface AdminServerOptions {
  /** The app's registry, or in a cluster primary its workers' registries aggregated. */
  registry: Pick<Registry, "metrics" | "contentType">;
  /**
   * Readiness: undefined while the service can answer, else why not ("database unreachable",
   * or in a cluster primary "workers starting").
   */
  notReadyReason: () => Promise<string | undefined>;
}

export interface AdminServer {
  /** Starts listening; resolves with the port bound. */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The admin port: `/metrics` (Prometheus text), `/healthz` (liveness: the process answers)
 * and `/readyz` (readiness: the database answers and, in a cluster primary, every worker
 * listens). Kept off the service ports so that
 * they are never exposed to clients by accident.
 */
export function createAdminServer({ registry, notReadyReason }: AdminServerOptions): AdminServer {
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
          const reason = await notReadyReason();
          response
            .writeHead(reason === undefined ? 200 : 503, { "content-type": "text/plain" })
            .end(`${reason ?? "ready"}\n`);
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

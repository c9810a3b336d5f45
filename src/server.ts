import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import http2 from "node:http2";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import { Duplex } from "node:stream";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { loadSync, type PackageDefinition } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import { AuthService } from "../gen/auth/v1/auth_pb.js";
import { Authorization } from "../gen/envoy/service/auth/v3/external_auth_pb.js";
import {
  addConnectService,
  answerDecodeFailuresAsInvalidArgument,
  peerAddressKey,
} from "./rpc/connect-adapter.js";
import { addGrpcService } from "./rpc/grpc-adapter.js";
import type { InternalErrorListener, ServiceHandlers } from "./rpc/handler.js";

/** DESIGN.md §4b: larger request messages are refused with RESOURCE_EXHAUSTED. */
export const MAX_REQUEST_BYTES = 1024 * 1024;

/** Where the JWK Set is served over plain HTTP on the Connect port. */
export const JWKS_PATH = "/.well-known/jwks.json";
/** Verifiers may cache the JWK Set this long; a new key is published before it signs. */
export const JWKS_MAX_AGE_SECONDS = 300;

/** What one client connection may take of the server, on both ports (README "Transport limits"). */
export interface TransportLimits {
  /** Concurrent calls (HTTP/2 streams) per connection. */
  maxConcurrentStreams: number;
  /** Request headers (gRPC metadata) per call, in bytes. */
  maxHeaderBytes: number;
  /** A connection with no call in flight for this long is closed. */
  idleTimeoutMs: number;
  /** The server pings an HTTP/2 connection after this much silence… */
  keepaliveTimeMs: number;
  /** …and closes it when the ping is not answered within this. */
  keepaliveTimeoutMs: number;
  /** An HTTP/1.1 request must have sent its headers within this. */
  headersTimeoutMs: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  maxConcurrentStreams: 100,
  maxHeaderBytes: 16 * 1024,
  idleTimeoutMs: 5 * 60 * 1000,
  keepaliveTimeMs: 60 * 1000,
  keepaliveTimeoutMs: 20 * 1000,
  headersTimeoutMs: 10 * 1000,
};

export interface ServersOptions {
  handlers: ServiceHandlers<typeof AuthService>;
  /** Envoy ext_authz, served on the gRPC port. */
  envoyAuthorization: ServiceHandlers<typeof Authorization>;
  /** RFC 7517 JWK Set served at JWKS_PATH. */
  jwksJson: string;
  onInternalError: InternalErrorListener;
  /** Defaults to DEFAULT_TRANSPORT_LIMITS; tests shorten the timeouts. */
  limits?: Partial<TransportLimits>;
}

export interface ListenOptions {
  host: string;
  /** gRPC port; 0 picks a free one. */
  port: number;
  /** Connect and gRPC-Web port; 0 picks a free one. */
  httpPort: number;
}

export interface AuthServers {
  /** Health answers SERVING only while this is true (DESIGN.md §4). */
  setServing(serving: boolean): void;
  /** Starts listening; resolves with the ports bound. */
  listen(options: ListenOptions): Promise<{ port: number; httpPort: number }>;
  /** Stops accepting, lets in-flight calls finish for up to `timeoutMs`, then cuts the rest. */
  shutdown(timeoutMs: number): Promise<void>;
}

/**
 * Reflection describes every service on the port from the descriptor set `buf build` writes
 * (AuthService with its comments, and our copy of grpc.health.v1), plus the reflection
 * services themselves, so that `grpcurl list` and `describe` work for all of them.
 */
function reflectionService(): ReflectionService {
  const descriptorSet = readFileSync(new URL("../gen/descriptor-set.binpb", import.meta.url));
  const reflectionProtoDir = path.join(
    path.dirname(createRequire(import.meta.url).resolve("@grpc/reflection")),
    "../proto",
  );
  const reflection = loadSync(
    ["grpc/reflection/v1/reflection.proto", "grpc/reflection/v1alpha/reflection.proto"],
    { includeDirs: [reflectionProtoDir] },
  );
  // Every file of the set, under its own name: proto-loader's conversion of a descriptor set
  // loses the well-known types' files, and clients then cannot resolve auth.proto's imports.
  const files = fromBinary(FileDescriptorSetSchema, descriptorSet).file.map((file) =>
    Buffer.from(toBinary(FileDescriptorProtoSchema, file)),
  );
  const ours = {
    [AuthService.typeName]: { fileDescriptorProtos: files },
    [Authorization.typeName]: { fileDescriptorProtos: files },
  } as unknown as PackageDefinition;
  return new ReflectionService({ ...reflection, ...ours });
}

/** Listens on a TCP port; resolves with the port bound (0 picks a free one). */
export function listenOn(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

/** The HTTP/2 connection preface starts with these bytes; anything else is HTTP/1.x. */
const HTTP2_PREFACE_START = "PRI";

/**
 * The socket as a stream that first replays the bytes already read. HTTP/2 sessions read
 * a net.Socket's handle directly, past anything unshifted; a plain stream they read in JS.
 */
function replayingStream(socket: net.Socket, firstChunk: Buffer): Duplex {
  const stream = new Duplex({
    read: () => socket.resume(),
    write: (chunk, encoding, callback) => socket.write(chunk, encoding, callback),
    final: (callback) => socket.end(callback),
    destroy: (error, callback) => {
      socket.destroy(error ?? undefined);
      callback(error);
    },
  });
  stream.push(firstChunk);
  socket.on("data", (chunk) => {
    if (!stream.push(chunk)) {
      socket.pause();
    }
  });
  socket.once("end", () => stream.push(null));
  socket.once("close", () => stream.destroy());
  return stream;
}

/**
 * GET (or HEAD) JWKS_PATH: the JWK Set for verifiers that are not gRPC clients (Istio,
 * API gateways); anything else that no RPC route took is a 404.
 */
function jwksRoute(jwksJson: string): ReturnType<typeof connectNodeAdapter> {
  const body = Buffer.from(jwksJson);
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
  return (request, response) => {
    if (new URL(request.url ?? "/", "http://localhost").pathname !== JWKS_PATH) {
      response.writeHead(404);
      response.end();
      return;
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" });
      response.end();
      return;
    }
    const headers = {
      "content-type": "application/jwk-set+json",
      "cache-control": `public, max-age=${JWKS_MAX_AGE_SECONDS}`,
      etag,
    };
    if (request.headers["if-none-match"] === etag) {
      response.writeHead(304, headers);
      response.end();
      return;
    }
    response.writeHead(200, { ...headers, "content-length": body.length });
    if (request.method === "HEAD") {
      response.end();
    } else {
      response.end(body);
    }
  };
}

/**
 * grpc-js's idle and keepalive rules, for the Connect port's HTTP/2 sessions: close a session
 * with no stream open for `idleTimeoutMs`, ping one that has been quiet for `keepaliveTimeMs`,
 * and destroy it when the ping is not answered within `keepaliveTimeoutMs`.
 */
function keepSessionAlive(session: http2.ServerHttp2Session, limits: TransportLimits): void {
  let openStreams = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  const startIdleTimer = () => {
    idleTimer = setTimeout(() => session.close(), limits.idleTimeoutMs);
    idleTimer.unref();
  };
  session.on("stream", (stream) => {
    openStreams += 1;
    clearTimeout(idleTimer);
    stream.once("close", () => {
      openStreams -= 1;
      if (openStreams === 0 && !session.closed) {
        startIdleTimer();
      }
    });
  });
  startIdleTimer();
  session.setTimeout(limits.keepaliveTimeMs, () => {
    const answered = setTimeout(() => session.destroy(), limits.keepaliveTimeoutMs);
    answered.unref();
    const sent = session.ping((error) => {
      clearTimeout(answered);
      if (error) {
        session.destroy();
      }
    });
    if (!sent) {
      clearTimeout(answered);
    }
  });
  session.once("close", () => clearTimeout(idleTimer));
}

/** The size of a call's metadata as it came in: names and values, in bytes. */
function metadataBytes(metadata: grpc.Metadata): number {
  let bytes = 0;
  for (const [name, values] of Object.entries(metadata.toHttp2Headers())) {
    for (const value of [values].flat()) {
      bytes += name.length + Buffer.byteLength(String(value));
    }
  }
  return bytes;
}

/**
 * grpc-js has no setting for the size of request headers: calls whose metadata is larger
 * than `maxBytes` are answered RESOURCE_EXHAUSTED before any handler runs.
 */
function metadataSizeLimit(maxBytes: number): grpc.ServerInterceptor {
  return (_method, call) => {
    const limited: grpc.ServerInterceptingCall = new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, passOn) {
            if (metadataBytes(metadata) > maxBytes) {
              limited.sendStatus({
                code: grpc.status.RESOURCE_EXHAUSTED,
                details: "the request headers are too large",
                metadata: new grpc.Metadata(),
              });
              return;
            }
            passOn(metadata);
          },
        });
      },
    });
    return limited;
  };
}

/** Creates the gRPC server (grpc-js) and the Connect/gRPC-Web server (connect-node), not yet listening. */
export function createServers(options: ServersOptions): AuthServers {
  const { handlers, envoyAuthorization, jwksJson, onInternalError } = options;
  const limits = { ...DEFAULT_TRANSPORT_LIMITS, ...options.limits };

  const grpcServer = new grpc.Server({
    "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
    "grpc.max_concurrent_streams": limits.maxConcurrentStreams,
    "grpc.max_connection_idle_ms": limits.idleTimeoutMs,
    "grpc.keepalive_time_ms": limits.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": limits.keepaliveTimeoutMs,
    // Caps what one connection may buffer (HTTP/2 headers and frames in flight), in MiB.
    "grpc-node.max_session_memory": 10,
    interceptors: [metadataSizeLimit(limits.maxHeaderBytes)],
  });
  addGrpcService(grpcServer, AuthService, handlers, onInternalError);
  addGrpcService(grpcServer, Authorization, envoyAuthorization, onInternalError);
  const health = new HealthImplementation({
    "": "NOT_SERVING",
    [AuthService.typeName]: "NOT_SERVING",
  });
  health.addToServer(grpcServer);
  reflectionService().addToServer(grpcServer);

  const connectHandler = connectNodeAdapter({
    routes: (router) => {
      addConnectService(router, AuthService, handlers, onInternalError);
      answerDecodeFailuresAsInvalidArgument(router);
    },
    readMaxBytes: MAX_REQUEST_BYTES,
    fallback: jwksRoute(jwksJson),
    contextValues: (request) =>
      createContextValues().set(
        peerAddressKey,
        ("stream" in request
          ? http2PeerAddresses.get(request.stream.session as http2.ServerHttp2Session)
          : request.socket.remoteAddress) ?? "",
      ),
  });
  // An HTTP/2 session reads a stream wrapped in a socket of Node's own, which knows no
  // peer address: each session's is noted when the front hands its connection over.
  const http2PeerAddresses = new WeakMap<http2.ServerHttp2Session, string>();
  let connectingPeerAddress = "";
  // HTTP/1.1 (browsers, curl) and cleartext HTTP/2 (gRPC, Connect clients) on one port:
  // the first bytes of a connection say which server takes it.
  const http1Server = http.createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
    },
    connectHandler,
  );
  // A request is not cut by time: its deadline is the client's (connect-node enforces it).
  http1Server.requestTimeout = 0;
  const http2Server = http2.createServer(
    {
      settings: {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: limits.maxHeaderBytes,
      },
      maxSessionMemory: 10,
    },
    connectHandler,
  );
  const sockets = new Set<net.Socket>();
  const http2Sessions = new Set<http2.ServerHttp2Session>();
  http2Server.on("session", (session) => {
    http2Sessions.add(session);
    http2PeerAddresses.set(session, connectingPeerAddress);
    session.once("close", () => http2Sessions.delete(session));
    keepSessionAlive(session, limits);
  });
  const httpFront = net.createServer((socket) => {
    // A connection that never says which protocol it speaks is dropped.
    socket.setTimeout(limits.headersTimeoutMs, () => socket.destroy());
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.once("data", (chunk: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      if (chunk.subarray(0, 3).toString("latin1") === HTTP2_PREFACE_START) {
        // The server creates the session (and emits "session") synchronously.
        connectingPeerAddress = socket.remoteAddress ?? "";
        http2Server.emit("connection", replayingStream(socket, chunk));
      } else {
        socket.unshift(chunk);
        http1Server.emit("connection", socket);
        socket.resume();
      }
    });
  });

  return {
    setServing(serving) {
      const status = serving ? "SERVING" : "NOT_SERVING";
      health.setStatus("", status);
      health.setStatus(AuthService.typeName, status);
    },

    async listen({ host, port, httpPort }) {
      const boundPort = await new Promise<number>((resolve, reject) => {
        grpcServer.bindAsync(
          `${host}:${port}`,
          grpc.ServerCredentials.createInsecure(),
          (error, bound) => (error ? reject(error) : resolve(bound)),
        );
      });
      return { port: boundPort, httpPort: await listenOn(httpFront, host, httpPort) };
    },

    async shutdown(timeoutMs) {
      const grpcDone = new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()));
      const httpDone = new Promise<void>((resolve) => httpFront.close(() => resolve()));
      http1Server.closeIdleConnections();
      for (const session of http2Sessions) {
        session.close();
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), timeoutMs);
      });
      const result = await Promise.race([Promise.all([grpcDone, httpDone]), timedOut]);
      clearTimeout(timer);
      if (result === "timeout") {
        grpcServer.forceShutdown();
        for (const socket of sockets) {
          socket.destroy();
        }
      }
    },
  };
}

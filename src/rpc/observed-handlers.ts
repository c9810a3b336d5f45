import { randomUUID } from "node:crypto";
import type { DescMessage, DescService } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  context as otelContext,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { Logger } from "pino";
import { AuthError } from "../auth-error.js";
import { fixedFieldsLogger } from "../observability/logger.js";
import type { ServiceMetrics } from "../observability/metrics.js";
import { toConnectError } from "./errors.js";
import {
  type CallContext,
  handlerFor,
  type ServiceHandlers,
  servedMethods,
  type UnaryHandler,
} from "./handler.js";

/** Request id header: taken from the caller when it is sane, else generated; always echoed. */
export const REQUEST_ID_HEADER = "x-request-id";
/** Printable, short, no spaces: safe to put in a log line and a response header. */
const REQUEST_ID_FORMAT = /^[A-Za-z0-9._:/+=-]{1,128}$/;

export interface ObservedHandlersOptions {
  metrics: ServiceMetrics;
  logger: Logger;
  /** Undefined when tracing is off: then no span work at all is done per call. */
  tracer: Tracer | undefined;
}

const traceContextPropagator = new W3CTraceContextPropagator();
const headerGetter: TextMapGetter<CallContext> = {
  get: (call, key) => call.requestHeader(key),
  keys: () => [],
};
const ignoreInternal = () => {};

/** The gRPC status code an error is answered with (the adapters map it the same way). */
function statusCode(error: unknown): number {
  return toConnectError(error, ignoreInternal).code;
}

/**
 * Wraps every unary handler once for both servers: a request id echoed in the response
 * headers, one log line, request count by code, latency and error reason in the metrics,
 * and, when tracing is on, a server span (child of the caller's `traceparent`) that the
 * database and argon2 spans of the call hang under.
 */
export function observeHandlers<S extends DescService>(
  service: S,
  handlers: ServiceHandlers<S>,
  { metrics, logger, tracer }: ObservedHandlersOptions,
): ServiceHandlers<S> {
  const observed: Record<string, unknown> = { ...handlers };
  const callLog = fixedFieldsLogger(logger);
  // Server streams (WatchRevocations) pass through unobserved: a call-per-line log and a
  // latency histogram do not fit a stream that lives as long as its subscriber.
  for (const method of servedMethods(service)) {
    if (method.methodKind !== "unary") {
      continue;
    }
    const handler = handlerFor(handlers, method);
    const procedure = `${service.typeName}/${method.name}`;
    const spanAttributes = {
      "rpc.system": "grpc",
      "rpc.service": service.typeName,
      "rpc.method": method.name,
    };

    const traced: UnaryHandler<DescMessage, DescMessage> = async (request, call) => {
      const parent = traceContextPropagator.extract(ROOT_CONTEXT, call, headerGetter);
      const span = (tracer as Tracer).startSpan(
        procedure,
        { kind: SpanKind.SERVER, attributes: spanAttributes },
        parent,
      );
      try {
        return await otelContext.with(trace.setSpan(parent, span), () => handler(request, call));
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        span.setAttribute("rpc.grpc.status_code", statusCode(error));
        throw error;
      } finally {
        span.end();
      }
    };
    const run = tracer ? traced : handler;

    const wrapped: UnaryHandler<DescMessage, DescMessage> = async (request, call) => {
      const started = performance.now();
      const given = call.requestHeader(REQUEST_ID_HEADER);
      const requestId = given && REQUEST_ID_FORMAT.test(given) ? given : randomUUID();
      call.setResponseHeader(REQUEST_ID_HEADER, requestId);
      let code = "OK";
      let reason: string | undefined;
      try {
        return await run(request, call);
      } catch (error) {
        code = grpc.status[statusCode(error)] ?? "UNKNOWN";
        reason = error instanceof AuthError ? error.reason : undefined;
        throw error;
      } finally {
        const seconds = (performance.now() - started) / 1000;
        metrics.observeCall({ method: procedure, server: call.server, code, reason, seconds });
        callLog.info(
          {
            requestId,
            method: procedure,
            server: call.server,
            code,
            reason,
            durationMs: Math.round(seconds * 1e6) / 1e3,
          },
          "rpc",
        );
      }
    };
    observed[method.localName] = wrapped;
  }
  return observed as ServiceHandlers<S>;
}

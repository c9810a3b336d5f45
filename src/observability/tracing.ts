import { context, SpanKind, SpanStatusCode, type Tracer, trace } from "@opentelemetry/api";
import type { ExecutedQuery } from "../db/database.js";

export interface TracingOptions {
  /** OTLP/HTTP collector base URL; spans go to `<endpoint>/v1/traces` as OTLP JSON. */
  endpoint: string;
  serviceName: string;
}

export interface Tracing {
  tracer: Tracer;
  /** Exports the spans still buffered, then stops. */
  shutdown(): Promise<void>;
}

/**
 * Starts exporting spans. The tracer is passed to whoever makes spans; only the context
 * manager is process-wide, because OpenTelemetry's active context is (it follows async
 * calls, so database and argon2 spans find their RPC span without being handed it).
 * The SDK and exporter are loaded only here: ~15 MiB of resident memory a service with
 * tracing off does not need.
 */
export async function startTracing({ endpoint, serviceName }: TracingOptions): Promise<Tracing> {
  const [
    { AsyncLocalStorageContextManager },
    { OTLPTraceExporter },
    { resourceFromAttributes },
    { BasicTracerProvider, BatchSpanProcessor },
    { ATTR_SERVICE_NAME },
  ] = await Promise.all([
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/semantic-conventions"),
  ]);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }),
    spanProcessors: [
      new BatchSpanProcessor(
        new OTLPTraceExporter({ url: `${endpoint.replace(/\/+$/, "")}/v1/traces` }),
      ),
    ],
  });
  // Another app in this process may have set one already: then that one serves both.
  const contextManager = new AsyncLocalStorageContextManager().enable();
  if (!context.setGlobalContextManager(contextManager)) {
    contextManager.disable();
  }
  return {
    tracer: provider.getTracer("auth-service"),
    shutdown: () => provider.shutdown(),
  };
}

/**
 * Records each query as a client span under the current RPC's span, back-dated to when it
 * started (the database layer reports a query once it has run). Queries outside an RPC
 * (health pings, the active-sessions count) make no span.
 */
export function databaseSpanRecorder(tracer: Tracer): (query: ExecutedQuery) => void {
  return (query) => {
    if (trace.getActiveSpan() === undefined) {
      return;
    }
    const now = Date.now();
    const span = tracer.startSpan("db.query", {
      kind: SpanKind.CLIENT,
      startTime: now - query.durationMs,
      attributes: { "db.system.name": "postgresql", "db.query.text": query.sql },
    });
    if (query.failed) {
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end(now);
  };
}

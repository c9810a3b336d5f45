import http from "node:http";
import type net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { newUser, startTestServer } from "./harness.js";

interface ExportedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

/** A stand-in OTLP/HTTP collector on loopback: keeps every span posted to /v1/traces. */
async function startCollector() {
  const spans: ExportedSpan[] = [];
  const paths: string[] = [];
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => {
      body += chunk;
    });
    request.on("end", () => {
      paths.push(`${request.method} ${request.url} ${request.headers["content-type"]}`);
      const payload = JSON.parse(body) as {
        resourceSpans: { scopeSpans: { spans: ExportedSpan[] }[] }[];
      };
      for (const resource of payload.resourceSpans) {
        for (const scope of resource.scopeSpans) {
          spans.push(...scope.spans);
        }
      }
      response.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    paths,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const collectors: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  for (const collector of collectors.splice(0)) {
    await collector.close();
  }
});

const CALLER_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID = "00f067aa0ba902b7";

describe("tracing", () => {
  it("exports a span per RPC, child of the caller's traceparent, with database and argon2 children", async () => {
    const collector = await startCollector();
    collectors.push(collector);
    const server = await startTestServer({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint });
    const input = newUser();
    await server.grpc.signUp(input);
    await server.grpc.login(
      { identifier: input.username, password: input.password },
      { traceparent: `00-${CALLER_TRACE_ID}-${CALLER_SPAN_ID}-01` },
    );
    await server.connect.getJwks({});
    // Closing flushes the batch of spans to the collector.
    await server.close();

    expect(collector.paths[0]).toBe("POST /v1/traces application/json");
    const login = collector.spans.find((span) => span.name === "auth.v1.AuthService/Login");
    expect(login).toBeDefined();
    expect(login?.traceId).toBe(CALLER_TRACE_ID);
    expect(login?.parentSpanId).toBe(CALLER_SPAN_ID);
    expect(login?.kind).toBe(2); // SERVER
    const children = collector.spans.filter((span) => span.parentSpanId === login?.spanId);
    const childNames = new Set(children.map((span) => span.name));
    expect(childNames).toContain("argon2.verify");
    expect(childNames).toContain("db.query");
    for (const child of children) {
      expect(child.traceId).toBe(CALLER_TRACE_ID);
    }
    // Login counts the attempt (rate limits), then looks the user up.
    const statements = children
      .filter((span) => span.name === "db.query")
      .map((span) =>
        String(
          span.attributes.find((attribute) => attribute.key === "db.query.text")?.value.stringValue,
        ),
      );
    expect(statements.some((text) => /select .* from "users"/i.test(text))).toBe(true);
    // No parameter values: the password hash and the username stay out of spans.
    expect(JSON.stringify(collector.spans)).not.toContain(input.username);

    // A call without traceparent starts a new trace; Connect calls are traced too.
    const signUp = collector.spans.find((span) => span.name === "auth.v1.AuthService/SignUp");
    expect(signUp?.traceId).not.toBe(CALLER_TRACE_ID);
    expect(signUp?.parentSpanId ?? "").toBe("");
    expect(collector.spans.map((span) => span.name)).toContain("auth.v1.AuthService/GetJwks");
    expect(collector.spans.filter((span) => span.name === "argon2.hash")).toHaveLength(1);
  });

  it("exports nothing when OTEL_EXPORTER_OTLP_ENDPOINT is unset", async () => {
    const collector = await startCollector();
    collectors.push(collector);
    const server = await startTestServer();
    await server.grpc.getJwks({}, { traceparent: `00-${CALLER_TRACE_ID}-${CALLER_SPAN_ID}-01` });
    await server.close();
    expect(collector.paths).toEqual([]);
  });
});

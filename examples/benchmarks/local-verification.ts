// Per-request cost of checking an access token in a protected service: the token checker
// in local mode (what the interceptors call), the bare verifier under it, and remote mode
// (one Verify round trip) for comparison. An auth-service runs in this process on an
// in-memory PGlite. Run: npx tsx examples/benchmarks/local-verification.ts
import { performance } from "node:perf_hooks";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createTokenChecker } from "../../src/interceptors/index.js";
import { signUpAndLogin, startTestServer } from "../../test/integration/harness.js";

const ITERATIONS = 20_000;
const REMOTE_ITERATIONS = 2_000;

async function timePerCall(count: number, call: () => unknown): Promise<number> {
  for (let i = 0; i < Math.min(count, 1_000); i++) {
    await call();
  }
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    await call();
  }
  return ((performance.now() - start) * 1000) / count;
}

const server = await startTestServer();
const stop = new AbortController();
try {
  const transport = createGrpcTransport({ baseUrl: `http://${server.grpcAddress}` });
  const local = createTokenChecker({ transport, signal: stop.signal });
  const remote = createTokenChecker({ transport, mode: "remote" });
  await local.ready();
  const { tokens } = await signUpAndLogin(server);
  const authorization = `Bearer ${tokens.accessToken}`;

  const localUs = await timePerCall(ITERATIONS, () => local.check(authorization));
  const remoteUs = await timePerCall(REMOTE_ITERATIONS, () => remote.check(authorization));
  console.log(`node ${process.version}, ${ITERATIONS} local / ${REMOTE_ITERATIONS} remote checks`);
  console.log(`local  (ES256 verify + revocation lookup): ${localUs.toFixed(1)} µs per request`);
  console.log(`remote (Verify over gRPC, loopback):       ${remoteUs.toFixed(1)} µs per request`);
} finally {
  stop.abort();
  await server.close();
}

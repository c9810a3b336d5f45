// Revocation delay on real PostgreSQL: two auth-service replicas on one database; a Logout
// on replica A, then how long until Verify on replica B answers SESSION_REVOKED, and until a
// locally verifying token checker (following B's WatchRevocations) refuses the token.
// Run: TEST_DATABASE_URL=postgres://… npx tsx examples/benchmarks/revocation-delay.ts
import { performance } from "node:perf_hooks";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createTokenChecker } from "../../src/interceptors/index.js";
import { generateEs256Pem } from "../../src/tokens/signing-keys.js";
import {
  grpcFailure,
  signUpAndLogin,
  startTestServer,
  type TestServer,
} from "../../test/integration/harness.js";

const ROUNDS = 30;
const GIVE_UP_MS = 5_000;

if (!process.env.TEST_DATABASE_URL) {
  console.error("set TEST_DATABASE_URL to a PostgreSQL database");
  process.exit(2);
}

/** Milliseconds until `refused()` is true, polling as fast as the event loop allows. */
async function msUntil(start: number, refused: () => Promise<boolean>): Promise<number> {
  while (performance.now() - start < GIVE_UP_MS) {
    if (await refused()) {
      return performance.now() - start;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error("not revoked in time");
}

function summary(name: string, values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  console.log(
    `${name}: median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, max ${at(1).toFixed(1)} ms (n=${values.length})`,
  );
}

const sharedKey = { JWT_PRIVATE_KEY: generateEs256Pem() };
const replicas: TestServer[] = [];
const stop = new AbortController();
try {
  replicas.push(await startTestServer(sharedKey), await startTestServer(sharedKey));
  const [a, b] = replicas as [TestServer, TestServer];
  const checker = createTokenChecker({
    transport: createGrpcTransport({ baseUrl: `http://${b.grpcAddress}` }),
    signal: stop.signal,
  });
  await checker.ready();
  const toReplica: number[] = [];
  const toChecker: number[] = [];
  const logoutCalls: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const { tokens } = await signUpAndLogin(a);
    const authorization = `Bearer ${tokens.accessToken}`;
    await b.grpc.verify({ accessToken: tokens.accessToken });
    await checker.check(authorization);
    const start = performance.now();
    const logout = a.grpc
      .logout({ refreshToken: tokens.refreshToken, allSessions: false })
      .then(() => logoutCalls.push(performance.now() - start));
    const [replicaMs, checkerMs] = await Promise.all([
      msUntil(start, async () => {
        const error = await grpcFailure(b.grpc.verify({ accessToken: tokens.accessToken })).catch(
          () => undefined,
        );
        return error?.reason === "SESSION_REVOKED";
      }),
      msUntil(start, () =>
        checker.check(authorization).then(
          () => false,
          () => true,
        ),
      ),
    ]);
    await logout;
    toReplica.push(replicaMs);
    toChecker.push(checkerMs);
  }
  console.log("from the start of Logout on replica A (the Logout round trip included):");
  summary("the Logout call on A itself", logoutCalls);
  summary("Verify on replica B refuses", toReplica);
  summary("local token checker on B's stream refuses", toChecker);
} finally {
  stop.abort();
  for (const replica of replicas) {
    await replica.close();
  }
}

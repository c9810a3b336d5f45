/**
 * `npm run bench`: builds and starts the service as its own process, prepares users and tokens, and
 * drives every scenario from a separate process for a bounded time. Prints one table and
 * writes the same rows as JSON under bench/results/. Settings (environment):
 *   BENCH_DURATION         seconds per row (default 3)
 *   BENCH_CONCURRENCY      concurrent streams per scenario (default "1,16,64,256")
 *   BENCH_SCENARIOS        only these scenarios, comma-separated (default: all)
 *   BENCH_DATABASE_URL     PostgreSQL URL; unset means PGlite in a temporary DATA_DIR
 *   BENCH_DISTINCT_TOKENS  tokens minted for the all-distinct Verify rows (default 24000)
 *   BENCH_CPU_PROF         1 = run the service with --cpu-prof (profiles in bench/results/)
 * The service gets this environment too: WORKERS=2 measures the multi-process mode (its CPU
 * and RSS are summed over the processes), and ARGON2_* apply to both the service and the raw
 * argon2id baseline.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  GetJwksRequestSchema,
  LoginRequestSchema,
  LoginResponseSchema,
  SignUpRequestSchema,
  VerifyRequestSchema,
} from "../gen/auth/v1/auth_pb.js";
import { grpcFrame, grpcMessage, quantile, unaryCall } from "./grpc-frames.js";
import type { GeneratorJob, GeneratorResult } from "./load-generator.js";
import { watchProcess } from "./process-stats.js";
import { ROOT, startBuiltService, stopProcess, waitForLine } from "./service-process.js";

const RESULTS = join(ROOT, "bench/results");
const AUTH = "/auth.v1.AuthService";
const PASSWORD = "correct horse battery staple 7";
const USERS = 16;

const durationSeconds = Number(process.env.BENCH_DURATION ?? 3);
const concurrencies = (process.env.BENCH_CONCURRENCY ?? "1,16,64,256")
  .split(",")
  .map((text) => Number(text.trim()));
const selected = process.env.BENCH_SCENARIOS?.split(",").map((name) => name.trim());
const distinctTokens = Number(process.env.BENCH_DISTINCT_TOKENS ?? 24_000);
const realisticTokens = 10_000;
const databaseUrl = process.env.BENCH_DATABASE_URL;
const cpuProfile = process.env.BENCH_CPU_PROF === "1";
/** The service's WORKERS setting, passed through to it. */
const workers = Number(process.env.WORKERS ?? 1);

interface Measurement {
  requests: number;
  errors: number;
  reqPerSec: number;
  p50Ms: number;
  p99Ms: number;
  serverCpuCores: number;
  serverPeakRssMib: number;
  generatorCpuCores: number;
}

interface Row extends Measurement {
  scenario: string;
  generator: "h2load" | "node-raw-h2" | "in-process";
  concurrency: number;
  baseline: string | undefined;
  ratio: number | undefined;
  /** req/s over the echo row of the same generator: the share of what that generator can drive. */
  ratioToGeneratorEcho: number | undefined;
}

interface Scenario {
  name: string;
  generator: Row["generator"];
  /** The scenario whose row at the same concurrency this one is compared with. */
  baseline?: string;
  run(concurrency: number): Promise<Measurement>;
}

/** A failure that stops the run; thrown, so that the started processes are stopped first. */
class BenchError extends Error {}

function fail(message: string): never {
  throw new BenchError(message);
}

function checkH2load(): void {
  try {
    execFileSync("h2load", ["--version"], { stdio: "ignore" });
  } catch {
    fail(
      "h2load not found. Install it with: sudo apt-get install -y nghttp2-client (Debian/Ubuntu)",
    );
  }
}

function tsxNode(script: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return spawn(process.execPath, ["--import", "tsx", script, ...args], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
}

function childOutput(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once("exit", (code) =>
      code === 0 ? resolve(output) : reject(new Error(`process exited with ${code}`)),
    );
  });
}

/** Splits a stream count into h2load's clients (-c) and streams per client (-m). */
function connectionsFor(concurrency: number): { clients: number; streams: number } {
  const clients = Math.min(concurrency, 4);
  return { clients, streams: Math.ceil(concurrency / clients) };
}

/** One h2load run with a fixed, pre-encoded gRPC body; latencies from its per-request log. */
async function h2loadRun(
  serverPid: number,
  url: string,
  body: Buffer,
  concurrency: number,
): Promise<Measurement> {
  const scratch = mkdtempSync(join(tmpdir(), "bench-h2load-"));
  const bodyFile = join(scratch, "body");
  const logFile = join(scratch, "log");
  writeFileSync(bodyFile, body);
  const { clients, streams } = connectionsFor(concurrency);
  const args = [
    ...["-D", String(durationSeconds), "-c", String(clients), "-m", String(streams), "-t", "1"],
    ...["-d", bodyFile, "-H", "content-type: application/grpc", "-H", "te: trailers"],
    `--log-file=${logFile}`,
    url,
  ];
  const h2load = spawn("h2load", args, { stdio: ["ignore", "pipe", "inherit"] });
  const generator = watchProcess(h2load.pid as number);
  const server = watchProcess(serverPid);
  const output = childOutput(h2load);
  const text = await output;
  const serverUsage = server.stop();
  const generatorCpuCores = generator.stop().cpuCores;
  const requests = /requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(
    text,
  );
  const rate = /finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(text);
  if (!requests || !rate) {
    fail(`could not read h2load's output:\n${text}`);
  }
  const latencies = Float64Array.from(
    readFileSync(logFile, "utf8")
      .trim()
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => Number(line.split("\t")[2]) / 1000),
  ).sort();
  rmSync(scratch, { recursive: true, force: true });
  return {
    requests: Number(requests[1]),
    errors: Number(requests[2]),
    reqPerSec: Number(rate[1]),
    p50Ms: quantile(latencies, 0.5),
    p99Ms: quantile(latencies, 0.99),
    serverCpuCores: serverUsage.cpuCores,
    serverPeakRssMib: serverUsage.peakRssMib,
    generatorCpuCores,
  };
}

async function generatorRun(serverPid: number, job: GeneratorJob): Promise<GeneratorResult> {
  const child = tsxNode("bench/load-generator.ts", [JSON.stringify(job)]);
  const server = watchProcess(serverPid);
  const result = JSON.parse(await childOutput(child)) as GeneratorResult;
  const usage = server.stop();
  return Object.assign(result, {
    serverCpuCores: usage.cpuCores,
    serverPeakRssMib: usage.peakRssMib,
  });
}

function generatorMeasurement(result: GeneratorResult): Measurement {
  const usage = result as GeneratorResult & { serverCpuCores: number; serverPeakRssMib: number };
  return {
    requests: result.requests,
    errors: result.errors,
    reqPerSec: result.requests / result.seconds,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    serverCpuCores: usage.serverCpuCores,
    serverPeakRssMib: usage.serverPeakRssMib,
    generatorCpuCores: result.generatorCpuCores,
  };
}

async function argon2Run(operation: "verify" | "hash", concurrency: number) {
  const job = { operation, concurrency, durationMs: durationSeconds * 1000 };
  // The baseline reads only the ARGON2_* settings; one process, whatever the service's WORKERS.
  const child = tsxNode("bench/argon2-baseline.ts", [JSON.stringify(job)], {
    ...process.env,
    WORKERS: "1",
  });
  const usage = watchProcess(child.pid as number);
  const result = JSON.parse(await childOutput(child)) as GeneratorResult & { cpuCores: number };
  const { peakRssMib } = usage.stop();
  return {
    requests: result.requests,
    errors: 0,
    reqPerSec: result.requests / result.seconds,
    p50Ms: result.p50Ms,
    p99Ms: result.p99Ms,
    serverCpuCores: result.cpuCores,
    serverPeakRssMib: peakRssMib,
    generatorCpuCores: 0,
  };
}

/** Calls that must succeed while preparing; `limit` run at a time. */
async function callAll(
  session: http2.ClientHttp2Session,
  path: string,
  frames: Buffer[],
  limit: number,
): Promise<Buffer[]> {
  const answers: Buffer[] = new Array(frames.length);
  let next = 0;
  const worker = async () => {
    while (next < frames.length) {
      const index = next++;
      const { grpcStatus, body } = await unaryCall(session, path, frames[index] as Buffer);
      if (grpcStatus !== 0) {
        fail(`preparing: ${path} answered gRPC status ${grpcStatus}`);
      }
      answers[index] = grpcMessage(body);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return answers;
}

function progress(label: string): () => void {
  const started = performance.now();
  const interactive = process.stderr.isTTY;
  const draw = () => {
    const elapsed = ((performance.now() - started) / 1000).toFixed(1);
    process.stderr.write(`\r\x1b[K${label}  ${elapsed}s`);
  };
  if (!interactive) {
    process.stderr.write(`${label}\n`);
    return () => {};
  }
  draw();
  const timer = setInterval(draw, 250);
  return () => {
    clearInterval(timer);
    draw();
    process.stderr.write("\n");
  };
}

function format(value: number | undefined, digits = 0): string {
  return value === undefined || Number.isNaN(value) ? "-" : value.toFixed(digits);
}

function percent(ratio: number | undefined): string {
  return ratio === undefined ? "-" : `${(ratio * 100).toFixed(0)} %`;
}

function printTable(rows: Row[]): void {
  const header = [
    "scenario",
    "generator",
    "streams",
    "req/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "srv CPU",
    "peak RSS MiB",
    "gen CPU",
    "baseline",
    "ratio",
    "vs gen echo",
  ];
  const lines = rows.map((row) => [
    row.scenario,
    row.generator,
    String(row.concurrency),
    format(row.reqPerSec),
    format(row.p50Ms, 2),
    format(row.p99Ms, 2),
    String(row.errors),
    format(row.serverCpuCores, 2),
    format(row.serverPeakRssMib),
    format(row.generatorCpuCores, 2),
    row.baseline ?? "-",
    percent(row.ratio),
    percent(row.ratioToGeneratorEcho),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...lines.map((line) => (line[column] as string).length)),
  );
  const render = (cells: string[]) =>
    `| ${cells.map((cell, column) => cell.padEnd(widths[column] as number)).join(" | ")} |`;
  console.log(render(header));
  console.log(`|${widths.map((width) => "-".repeat(width + 2)).join("|")}|`);
  for (const line of lines) {
    console.log(render(line));
  }
}

async function main(): Promise<void> {
  checkH2load();
  mkdirSync(RESULTS, { recursive: true });
  const loadBefore = loadavg();
  const dataDir = mkdtempSync(join(tmpdir(), "bench-data-"));
  const service = await startBuiltService(
    { DATA_DIR: dataDir, DATABASE_URL: databaseUrl ?? "" },
    cpuProfile ? ["--cpu-prof", `--cpu-prof-dir=${RESULTS}/profiles`] : [],
  );
  const serverPid = service.child.pid as number;
  const baselineServer = tsxNode("bench/verify-baseline-server.ts", []);
  const baseline = JSON.parse(await waitForLine(baselineServer, (line) => line.startsWith("{")));
  const url = (port: number, method: string) => `http://127.0.0.1:${port}${AUTH}/${method}`;
  const scratch = mkdtempSync(join(tmpdir(), "bench-tokens-"));

  try {
    const stopPreparing = progress(
      `preparing: ${USERS} users, ${Math.max(...concurrencies)} sessions, ${realisticTokens + distinctTokens} tokens`,
    );
    const session = http2.connect(`http://127.0.0.1:${service.port}`);
    const runId = Date.now().toString(36);
    const usernames = Array.from({ length: USERS }, (_, index) => `bench-${runId}-${index}`);
    await callAll(
      session,
      `${AUTH}/SignUp`,
      usernames.map((username) =>
        grpcFrame(
          toBinary(
            SignUpRequestSchema,
            create(SignUpRequestSchema, {
              username,
              email: `${username}@bench.example`,
              password: PASSWORD,
              firstName: "Bench",
              lastName: "Mark",
            }),
          ),
        ),
      ),
      4,
    );
    const loginFrame = (identifier: string) =>
      grpcFrame(
        toBinary(
          LoginRequestSchema,
          create(LoginRequestSchema, { identifier, password: PASSWORD }),
        ),
      );
    const sessionCount = Math.max(...concurrencies);
    const logins = await callAll(
      session,
      `${AUTH}/Login`,
      Array.from({ length: sessionCount }, (_, index) =>
        loginFrame(usernames[index % USERS] as string),
      ),
      8,
    );
    let refreshTokens = logins.map(
      (answer) => fromBinary(LoginResponseSchema, answer).tokens?.refreshToken ?? "",
    );
    // Access tokens come from Refresh: one database round trip each, no argon2.
    const tokensFile = join(scratch, "all-tokens.json");
    const minted = await generatorRun(serverPid, {
      kind: "refresh",
      port: service.port,
      concurrency: Math.min(sessionCount, 64),
      durationMs: 180_000,
      maxRequests: realisticTokens + distinctTokens,
      refreshTokens: refreshTokens.slice(0, Math.min(sessionCount, 64)),
      collectAccessTokensFile: tokensFile,
    });
    refreshTokens = [...(minted.refreshTokens ?? []), ...refreshTokens.slice(64)];
    const tokens = JSON.parse(readFileSync(tokensFile, "utf8")) as string[];
    if (tokens.length < realisticTokens + concurrencies.length) {
      fail(`minted only ${tokens.length} tokens in 3 minutes`);
    }
    const realisticFile = join(scratch, "realistic.json");
    writeFileSync(realisticFile, JSON.stringify(tokens.slice(0, realisticTokens)));
    const perRow = Math.floor((tokens.length - realisticTokens) / concurrencies.length);
    const distinctFiles = concurrencies.map((_, index) => {
      const file = join(scratch, `distinct-${index}.json`);
      const start = realisticTokens + index * perRow;
      writeFileSync(file, JSON.stringify(tokens.slice(start, start + perRow)));
      return file;
    });
    const echoFrame = grpcFrame(toBinary(GetJwksRequestSchema, create(GetJwksRequestSchema)));
    const baselineVerifyFrame = grpcFrame(
      toBinary(VerifyRequestSchema, create(VerifyRequestSchema, { accessToken: baseline.token })),
    );
    // A fixed body that fails would measure error answers: check it once.
    const baselineSession = http2.connect(`http://127.0.0.1:${baseline.port}`);
    await callAll(baselineSession, `${AUTH}/Verify`, [baselineVerifyFrame], 1);
    baselineSession.close();
    session.close();
    // The realistic mix is the steady state, where every token has been seen before: each
    // token is verified once first (once per pass; connections go to workers in turn, so
    // WORKERS passes let each worker see most of them).
    const warmPasses = !selected || selected.includes("verify-realistic") ? workers : 0;
    for (let pass = 0; pass < warmPasses; pass++) {
      await generatorRun(serverPid, {
        kind: "verify-once",
        port: service.port,
        concurrency: 64,
        durationMs: 120_000,
        maxRequests: realisticTokens,
        tokensFile: realisticFile,
      });
    }
    stopPreparing();

    const durationMs = durationSeconds * 1000;
    /** One time-bounded row of the Node generator against the service. */
    const generated = async (
      job: Partial<GeneratorJob> & Pick<GeneratorJob, "kind" | "concurrency">,
    ): Promise<Measurement> =>
      generatorMeasurement(
        await generatorRun(serverPid, {
          port: service.port,
          durationMs,
          maxRequests: Number.MAX_SAFE_INTEGER,
          ...job,
        }),
      );
    const allScenarios: Scenario[] = [
      {
        name: "argon2id-verify",
        generator: "in-process",
        run: (concurrency) => argon2Run("verify", concurrency),
      },
      {
        name: "argon2id-hash",
        generator: "in-process",
        run: (concurrency) => argon2Run("hash", concurrency),
      },
      {
        // The grpc-js stack alone: our adapter, no logging, metrics or header-size check.
        name: "echo-bare",
        generator: "h2load",
        run: (c) =>
          h2loadRun(baselineServer.pid as number, url(baseline.port, "GetJwks"), echoFrame, c),
      },
      {
        name: "echo",
        generator: "h2load",
        baseline: "echo-bare/h2load",
        run: (c) => h2loadRun(serverPid, url(service.port, "GetJwks"), echoFrame, c),
      },
      {
        name: "echo",
        generator: "node-raw-h2",
        baseline: "echo/h2load",
        run: async (concurrency) => generated({ kind: "echo", concurrency }),
      },
      {
        name: "echo+es256-verify",
        generator: "h2load",
        baseline: "echo/h2load",
        run: (c) =>
          h2loadRun(
            baselineServer.pid as number,
            url(baseline.port, "Verify"),
            baselineVerifyFrame,
            c,
          ),
      },
      {
        name: "verify-realistic",
        generator: "node-raw-h2",
        baseline: "echo/h2load",
        run: async (concurrency) =>
          generated({ kind: "verify-random", concurrency, tokensFile: realisticFile }),
      },
      {
        name: "verify-distinct",
        generator: "node-raw-h2",
        baseline: "echo+es256-verify/h2load",
        run: async (concurrency) =>
          generated({
            kind: "verify-once",
            concurrency,
            maxRequests: perRow,
            tokensFile: distinctFiles[concurrencies.indexOf(concurrency)] as string,
          }),
      },
      {
        name: "refresh",
        generator: "node-raw-h2",
        baseline: "echo/node-raw-h2",
        run: async (concurrency) => {
          const result = await generatorRun(serverPid, {
            kind: "refresh",
            port: service.port,
            concurrency,
            durationMs,
            maxRequests: Number.MAX_SAFE_INTEGER,
            refreshTokens: refreshTokens.slice(0, concurrency),
          });
          refreshTokens = [...(result.refreshTokens ?? []), ...refreshTokens.slice(concurrency)];
          return generatorMeasurement(result);
        },
      },
      {
        name: "signup",
        generator: "node-raw-h2",
        baseline: "argon2id-hash/in-process",
        run: async (concurrency) =>
          generated({ kind: "signup", concurrency, namePrefix: `bench-${runId}-c${concurrency}` }),
      },
      {
        // Not h2load: it cannot tell a refusal from an answer, and the hash queue refuses
        // calls beyond HASH_QUEUE_MAX (RESOURCE_EXHAUSTED, RATE_LIMITED); those count as errors.
        name: "login",
        generator: "node-raw-h2",
        baseline: "argon2id-verify/in-process",
        run: async (concurrency) =>
          generated({
            kind: "login",
            concurrency,
            logins: usernames.map((identifier) => ({ identifier, password: PASSWORD })),
          }),
      },
    ];
    const scenarios = allScenarios.filter(
      (scenario) => !selected || selected.includes(scenario.name),
    );

    const rows: Row[] = [];
    const total = scenarios.length * concurrencies.length;
    for (const scenario of scenarios) {
      for (const concurrency of concurrencies) {
        const stop = progress(
          `[${rows.length + 1}/${total}] ${scenario.name} (${scenario.generator}) at ${concurrency} streams`,
        );
        const measurement = await scenario.run(concurrency);
        stop();
        const base = rows.find(
          (row) =>
            `${row.scenario}/${row.generator}` === scenario.baseline &&
            row.concurrency === concurrency,
        );
        const generatorEcho = rows.find(
          (row) =>
            row.scenario === "echo" &&
            row.generator === scenario.generator &&
            row.concurrency === concurrency,
        );
        rows.push({
          scenario: scenario.name,
          generator: scenario.generator,
          concurrency,
          ...measurement,
          baseline: scenario.baseline,
          ratio: base ? measurement.reqPerSec / base.reqPerSec : undefined,
          ratioToGeneratorEcho:
            generatorEcho && scenario.name !== "echo"
              ? measurement.reqPerSec / generatorEcho.reqPerSec
              : undefined,
        });
      }
    }
    const serviceRssMib = Number(
      /^VmHWM:\s+(\d+)/m.exec(readFileSync(`/proc/${serverPid}/status`, "utf8"))?.[1] ?? 0,
    );
    const report = {
      time: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, node: process.version },
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadavg(),
      database: databaseUrl ? "postgresql" : "pglite",
      workers,
      durationSeconds,
      argon2: {
        memoryKib: process.env.ARGON2_MEMORY_KIB ?? "19456",
        timeCost: process.env.ARGON2_TIME_COST ?? "2",
        parallelism: process.env.ARGON2_PARALLELISM ?? "1",
      },
      servicePeakRssMib: serviceRssMib / 1024,
      rows,
    };
    const file = join(RESULTS, `bench-${report.time.replace(/[:.]/g, "-")}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(
      `\nauth-service bench: ${report.database}, WORKERS=${workers}, ${report.machine.cpus} cores (${report.machine.cpuModel}), node ${process.version}, ${durationSeconds}s per row, load average ${loadBefore.map((v) => v.toFixed(2)).join(" ")} before, ${report.loadAverageAfter.map((v) => v.toFixed(2)).join(" ")} after`,
    );
    printTable(rows);
    console.log(
      `\nservice peak RSS over the run: ${report.servicePeakRssMib.toFixed(0)} MiB. Results: ${file}`,
    );
  } finally {
    await stopProcess(baselineServer);
    await stopProcess(service.child);
    rmSync(scratch, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof BenchError ? `bench: ${error.message}` : error);
  process.exit(1);
});

/**
 * The Node load generator, run as its own process by bench/run.ts for the scenarios whose
 * request must change per call (h2load sends one fixed body). It writes HTTP/2 frames
 * itself (raw-grpc-client.ts). Every request is encoded before the clock starts; Refresh
 * and SignUp build theirs as they go, since each depends on the previous answer or must
 * be unique.
 *
 * Input: one JSON GeneratorJob as argv[2]. Output: one JSON GeneratorResult on stdout.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  GetJwksRequestSchema,
  LoginRequestSchema,
  RefreshRequestSchema,
  RefreshResponseSchema,
  SignUpRequestSchema,
  VerifyRequestSchema,
} from "../gen/auth/v1/auth_pb.js";
import { QUEUE_FULL_RETRY_MS } from "../src/accounts/password-hasher.js";
import { grpcFrame, grpcMessage, quantile } from "./grpc-frames.js";
import { RawGrpcConnection } from "./raw-grpc-client.js";

export interface GeneratorJob {
  kind: "echo" | "verify-random" | "verify-once" | "refresh" | "signup" | "login";
  port: number;
  concurrency: number;
  durationMs: number;
  /** Upper bound on calls, whatever the time. */
  maxRequests: number;
  /** verify-*: a JSON file with an array of access tokens. */
  tokensFile?: string;
  /** refresh: one refresh token per concurrent stream (each stream follows its own chain). */
  refreshTokens?: string[];
  /** refresh: write every issued access token to this JSON file (token minting). */
  collectAccessTokensFile?: string;
  /** signup: makes usernames unique across runs. */
  namePrefix?: string;
  /** login: the accounts the streams log in to, stream i to account i mod n. */
  logins?: Array<{ identifier: string; password: string }>;
}

export interface GeneratorResult {
  requests: number;
  /** Calls answered with an error status (no message). */
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  generatorCpuCores: number;
  /** refresh: the last refresh token of each chain, for the next run. */
  refreshTokens?: string[];
}

const AUTH = "/auth.v1.AuthService";

function nextFrameSource(job: GeneratorJob): {
  path: string;
  /** The frame for a stream's next call; `previous` is its last answer (refresh chains). */
  next(stream: number, previous: Buffer | undefined): Buffer | undefined;
  chains?: string[];
  collected?: string[];
} {
  switch (job.kind) {
    case "echo": {
      const frame = grpcFrame(toBinary(GetJwksRequestSchema, create(GetJwksRequestSchema)));
      return { path: `${AUTH}/GetJwks`, next: () => frame };
    }
    case "login": {
      const frames = (job.logins ?? []).map((login) =>
        grpcFrame(toBinary(LoginRequestSchema, create(LoginRequestSchema, login))),
      );
      return { path: `${AUTH}/Login`, next: (stream) => frames[stream % frames.length] };
    }
    case "verify-random":
    case "verify-once": {
      const tokens = JSON.parse(readFileSync(job.tokensFile as string, "utf8")) as string[];
      const frames = tokens.map((accessToken) =>
        grpcFrame(toBinary(VerifyRequestSchema, create(VerifyRequestSchema, { accessToken }))),
      );
      let cursor = 0;
      return {
        path: `${AUTH}/Verify`,
        next:
          job.kind === "verify-once"
            ? () => frames[cursor++]
            : () => frames[Math.floor(Math.random() * frames.length)],
      };
    }
    case "refresh": {
      const chains = [...(job.refreshTokens ?? [])];
      const collected: string[] | undefined = job.collectAccessTokensFile ? [] : undefined;
      return {
        path: `${AUTH}/Refresh`,
        chains,
        collected,
        next(stream, previous) {
          if (previous !== undefined) {
            const { tokens } = fromBinary(RefreshResponseSchema, grpcMessage(previous));
            chains[stream] = tokens?.refreshToken ?? "";
            collected?.push(tokens?.accessToken ?? "");
          }
          const refreshToken = chains[stream] as string;
          return grpcFrame(
            toBinary(RefreshRequestSchema, create(RefreshRequestSchema, { refreshToken })),
          );
        },
      };
    }
    case "signup": {
      let serial = 0;
      return {
        path: `${AUTH}/SignUp`,
        next() {
          const username = `${job.namePrefix}-${serial++}`;
          const request = create(SignUpRequestSchema, {
            username,
            email: `${username}@bench.example`,
            password: "correct horse battery staple 7",
            firstName: "Bench",
            lastName: "Mark",
          });
          return grpcFrame(toBinary(SignUpRequestSchema, request));
        },
      };
    }
  }
}

async function run(job: GeneratorJob): Promise<GeneratorResult> {
  const source = nextFrameSource(job);
  const connections = Math.min(job.concurrency, 4);
  const sessions = await Promise.all(
    Array.from({ length: connections }, () => RawGrpcConnection.connect(job.port)),
  );
  const latencies: number[] = [];
  let errors = 0;
  let started = 0;
  const cpuStart = process.cpuUsage();
  const begin = performance.now();
  const deadline = begin + job.durationMs;

  const stream = async (index: number) => {
    const session = sessions[index % connections] as RawGrpcConnection;
    let previous: Buffer | undefined;
    while (performance.now() < deadline && started < job.maxRequests) {
      const frame = source.next(index, previous);
      if (frame === undefined) {
        return;
      }
      started++;
      const sent = performance.now();
      const { ok, body } = await session.call(source.path, frame);
      latencies.push(performance.now() - sent);
      if (ok) {
        previous = body;
      } else {
        errors++;
        // A broken refresh chain cannot go on.
        if (job.kind === "refresh") {
          return;
        }
        // Beyond the hash queue, Login and SignUp are refused with a RetryInfo of
        // QUEUE_FULL_RETRY_MS; a well-behaved client waits that long instead of hammering.
        if (job.kind === "login" || job.kind === "signup") {
          await sleep(Math.min(QUEUE_FULL_RETRY_MS, deadline - performance.now()));
        }
      }
    }
    if (previous !== undefined && job.kind === "refresh") {
      // Keeps the chain usable for the next run: the last answer's token is the live one.
      source.next(index, previous);
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, (_, index) => stream(index)));
  const seconds = (performance.now() - begin) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  for (const session of sessions) {
    session.close();
  }
  if (job.collectAccessTokensFile && source.collected) {
    writeFileSync(job.collectAccessTokensFile, JSON.stringify(source.collected));
  }
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length - errors,
    errors,
    seconds,
    p50Ms: quantile(sorted, 0.5),
    p99Ms: quantile(sorted, 0.99),
    generatorCpuCores: (cpu.user + cpu.system) / 1e6 / seconds,
    refreshTokens: source.chains,
  };
}

run(JSON.parse(process.argv[2] as string) as GeneratorJob).then(
  (result) => process.stdout.write(JSON.stringify(result)),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);

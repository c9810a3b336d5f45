import type { Cluster } from "node:cluster";
import { Command, CommanderError } from "commander";
import type { Logger } from "pino";
import { createUserAdmin, type UserAdmin, type UserAdminResult } from "./accounts/user-admin.js";
import { startApp } from "./app.js";
import { CliError } from "./cli-error.js";
import type { Clock } from "./clock.js";
import { runClusterPrimary, serveClusterWorker } from "./cluster.js";
import { type Config, ConfigError, loadConfigWithFile, settingsHelp } from "./config.js";
import { type Database, openDatabase } from "./db/database.js";
import { isDatabaseUnavailable } from "./db/errors.js";
import { migrateToLatest } from "./db/migrate.js";
import { createLogger } from "./observability/logger.js";
import {
  createKeyStore,
  type KeyStore,
  keyStoreDirectory,
  type StoredKey,
} from "./tokens/key-store.js";

/** Exit codes: 0 done, 1 the command failed (no such user, database away), 2 bad usage or setting. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface CliOptions {
  env: Record<string, string | undefined>;
  /** node:cluster: `serve` with WORKERS > 1 forks workers through it, and a worker knows itself by it. */
  cluster: Cluster;
  clock: Clock;
  /** Human output of the commands (one line each); logs go to the logger. */
  print: (line: string) => void;
  /** Resolves with the signal that asks `serve` to stop. */
  waitForStopSignal: () => Promise<NodeJS.Signals>;
}

function readConfig(options: CliOptions): { config: Config; logger: Logger } {
  const config = loadConfigWithFile(options.env);
  return { config, logger: createLogger({ level: config.logLevel }) };
}

async function withDatabase<T>(config: Config, run: (db: Database) => Promise<T>): Promise<T> {
  const db = await openDatabase({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
    preparedStatements: config.databasePreparedStatements,
  });
  try {
    // Admin commands may run before the first `serve`: the schema must be there.
    await migrateToLatest(db);
    return await run(db);
  } finally {
    await db.destroy();
  }
}

function describeUser(result: UserAdminResult): string {
  return `${result.user.username} (${result.user.id})`;
}

function keyLine(key: StoredKey): string {
  const role = key.active ? "active" : key.canSign ? "verify" : "verify (public only)";
  return `${key.kid}  ${role.padEnd(20)}  ${key.createTime.toISOString()}  ${key.file}`;
}

/** The signing-key store in JWT_KEYS_DIR (else DATA_DIR/keys); HS256 has none. */
function keyStoreFor(config: Config): KeyStore {
  const directory = keyStoreDirectory(config);
  if (directory === undefined || config.jwtSecret !== undefined) {
    throw new ConfigError("keys: HS256 (JWT_SECRET) has no key store");
  }
  return createKeyStore(directory);
}

/** The `auth-service` command line: serve, migrate, keys, users, sessions. */
export function createCli(options: CliOptions): Command {
  const program = new Command("auth-service")
    .description("gRPC auth service: accounts, argon2id passwords, JWT access and refresh tokens")
    .showHelpAfterError("(add --help for usage)")
    .exitOverride()
    .addHelpText("after", `\n${settingsHelp()}`);

  program
    .command("serve")
    .description("start the gRPC, Connect and admin servers (the default command)")
    .addHelpText("after", `\n${settingsHelp()}`)
    .action(async () => {
      const { config, logger } = readConfig(options);
      const { clock, cluster, waitForStopSignal } = options;
      if (cluster.worker !== undefined) {
        await serveClusterWorker({
          config,
          clock,
          logger,
          worker: cluster.worker,
          waitForStopSignal,
        });
        return;
      }
      if (config.workers > 1) {
        await runClusterPrimary({ config, clock, logger, cluster, waitForStopSignal });
        return;
      }
      const app = await startApp({ config, clock, logger });
      logger.info(
        {
          grpc: `${config.host}:${app.port}`,
          http: `${config.host}:${app.httpPort}`,
          admin: `${config.host}:${app.adminPort}`,
          database: config.databaseUrl ? "postgresql" : "pglite",
          tracing: config.otlpEndpoint !== undefined,
        },
        "auth-service listening",
      );
      const signal = await options.waitForStopSignal();
      logger.info({ signal }, "shutting down");
      await app.close();
      logger.info("stopped");
    });

  program
    .command("migrate")
    .description("apply pending database migrations and exit")
    .action(async () => {
      const { config } = readConfig(options);
      const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
      try {
        const applied = await migrateToLatest(db);
        options.print(
          applied.length > 0
            ? `applied ${applied.length} migration(s): ${applied.join(", ")}`
            : "database is up to date",
        );
      } finally {
        await db.destroy();
      }
    });

  const keys = program
    .command("keys")
    .description(
      "manage the signing keys in JWT_KEYS_DIR (else DATA_DIR/keys); replicas pick changes up when they restart",
    );
  const keyStore = () => keyStoreFor(readConfig(options).config);
  keys
    .command("list", { isDefault: true })
    .description("list the keys: which one signs, which only verify (the default)")
    .action(async () => {
      for (const key of await keyStore().list()) {
        options.print(keyLine(key));
      }
    });
  keys
    .command("generate")
    .description("create a key and make it the one that signs")
    .action(async () => options.print(keyLine(await keyStore().generate())));
  keys
    .command("rotate")
    .description("make a new key sign; the previous one keeps verifying until removed")
    .action(async () => {
      const { active, previous } = await keyStore().rotate();
      options.print(keyLine(active));
      if (previous) {
        options.print(`${previous.kid} keeps verifying; remove it once its tokens have expired`);
      }
    });
  keys
    .command("remove")
    .description("delete a key that no longer signs (once its tokens have expired)")
    .argument("<kid>", "the key id, as keys list shows it")
    .action(async (kid: string) => keyStore().remove(kid));

  /** Runs one operator action on a user; a user that does not exist is the operator's error. */
  async function onUser(
    user: string,
    action: (admin: UserAdmin, user: string) => Promise<UserAdminResult | undefined>,
  ): Promise<UserAdminResult> {
    const { config } = readConfig(options);
    const result = await withDatabase(config, (db) =>
      action(createUserAdmin({ db, clock: options.clock }), user),
    );
    if (!result) {
      throw new CliError(`no user matches "${user}" (give a username, email, phone number or id)`);
    }
    return result;
  }
  const USER_ARGUMENT = "username, email, phone number or user id";

  const users = program.command("users").description("disable or enable a user");
  users
    .command("disable")
    .description("block a user's logins (INVALID_CREDENTIALS) and revoke all their sessions")
    .argument("<identifier>", USER_ARGUMENT)
    .action(async (identifier: string) => {
      const result = await onUser(identifier, (admin, user) => admin.disable(user));
      options.print(
        `disabled ${describeUser(result)}; ${result.revokedSessions} session(s) revoked`,
      );
    });
  users
    .command("enable")
    .description("allow a disabled user to log in again")
    .argument("<identifier>", USER_ARGUMENT)
    .action(async (identifier: string) => {
      const result = await onUser(identifier, (admin, user) => admin.enable(user));
      options.print(`enabled ${describeUser(result)}`);
    });

  program
    .command("sessions")
    .description("revoke sessions")
    .command("revoke")
    .description("revoke every session of a user: refresh and access tokens stop working")
    .argument("<user>", USER_ARGUMENT)
    .action(async (user: string) => {
      const result = await onUser(user, (admin, name) => admin.revokeSessions(name));
      options.print(`revoked ${result.revokedSessions} session(s) of ${describeUser(result)}`);
    });

  return program;
}

/**
 * Runs the command line; resolves with the exit code. Errors become one line on stderr:
 * bad settings and usage exit 2, operator-facing failures 1, never a stack trace for those.
 */
export async function runCli(argv: string[], options: CliOptions): Promise<number> {
  try {
    // No command means serve; an unknown one is still an error, not an argument to serve.
    await createCli(options).parseAsync(argv.length > 0 ? argv : ["serve"], { from: "user" });
    return EXIT_OK;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander already printed the help or the usage error.
      return error.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (error instanceof ConfigError) {
      console.error(error.message);
      return EXIT_USAGE;
    }
    if (error instanceof CliError) {
      console.error(`auth-service: ${error.message}`);
      return EXIT_FAILED;
    }
    if (isDatabaseUnavailable(error) || isDatabaseUnavailable((error as Error)?.cause)) {
      console.error("auth-service: the database cannot be reached; check DATABASE_URL and retry");
      return EXIT_FAILED;
    }
    console.error("auth-service failed:", error);
    return EXIT_FAILED;
  }
}

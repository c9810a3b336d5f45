import { pino } from "pino";
import { startApp } from "./app.js";
import { systemClock } from "./clock.js";
import { ConfigError, loadConfig } from "./config.js";
import { openDatabase } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";
import { createKeyStore, keyStoreDirectory, type StoredKey } from "./tokens/key-store.js";

const USAGE = `usage: auth-service [serve | migrate | keys generate|rotate|list|remove <kid>]
  serve    start the gRPC and Connect servers (default)
  migrate  apply database migrations and exit
  keys     manage the signing keys in JWT_KEYS_DIR (else DATA_DIR/keys); replicas pick
           changes up when they restart
Settings come from the environment; see README.md.`;

function keyLine(key: StoredKey): string {
  const role = key.active ? "active" : key.canSign ? "verify" : "verify (public only)";
  return `${key.kid}  ${role.padEnd(20)}  ${key.createTime.toISOString()}  ${key.file}`;
}

async function keysCommand(directory: string, action: string, argument: string | undefined) {
  const store = createKeyStore(directory);
  switch (action) {
    case "list":
      for (const key of await store.list()) {
        console.log(keyLine(key));
      }
      return 0;
    case "generate":
      console.log(keyLine(await store.generate()));
      return 0;
    case "rotate": {
      const { active, previous } = await store.rotate();
      console.log(keyLine(active));
      if (previous) {
        console.log(`${previous.kid} keeps verifying; remove it once its tokens have expired`);
      }
      return 0;
    }
    case "remove":
      if (argument === undefined) {
        break;
      }
      await store.remove(argument);
      return 0;
  }
  console.error(USAGE);
  return 2;
}

async function main(command: string): Promise<number> {
  if (command === "--help" || command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (command !== "serve" && command !== "migrate" && command !== "keys") {
    console.error(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  const config = loadConfig(process.env);
  if (command === "keys") {
    const directory = keyStoreDirectory(config);
    if (directory === undefined || config.jwtSecret !== undefined) {
      console.error("keys: HS256 (JWT_SECRET) has no key store");
      return 2;
    }
    return keysCommand(directory, process.argv[3] ?? "list", process.argv[4]);
  }
  const logger = pino({ level: config.logLevel });

  if (command === "migrate") {
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
    try {
      const applied = await migrateToLatest(db);
      logger.info(
        { migrations: applied },
        applied.length ? "migrations applied" : "database is up to date",
      );
    } finally {
      await db.destroy();
    }
    return 0;
  }

  const app = await startApp({ config, clock: systemClock, logger });
  logger.info(
    {
      grpc: `${config.host}:${app.port}`,
      http: `${config.host}:${app.httpPort}`,
      database: config.databaseUrl ? "postgresql" : "pglite",
    },
    "auth-service listening",
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  logger.info({ signal }, "shutting down");
  await app.close();
  logger.info("stopped");
  return 0;
}

main(process.argv[2] ?? "serve").then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    console.error("auth-service failed to start:", error);
    process.exit(1);
  },
);

import { pino } from "pino";
import { startApp } from "./app.js";
import { systemClock } from "./clock.js";
import { ConfigError, loadConfig } from "./config.js";
import { openDatabase } from "./db/database.js";
import { migrateToLatest } from "./db/migrate.js";

const USAGE = `usage: auth-service [serve | migrate]
  serve    start the gRPC and Connect servers (default)
  migrate  apply database migrations and exit
Settings come from the environment; see README.md.`;

async function main(command: string): Promise<number> {
  if (command === "--help" || command === "help") {
    console.log(USAGE);
    return 0;
  }
  if (command !== "serve" && command !== "migrate") {
    console.error(`unknown command "${command}"\n${USAGE}`);
    return 2;
  }
  const config = loadConfig(process.env);
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

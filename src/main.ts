#!/usr/bin/env node
import cluster from "node:cluster";
import { runCli } from "./cli.js";
import { systemClock } from "./clock.js";

// The composition root: the only place that reads the process's environment, arguments and signals.
const code = await runCli(process.argv.slice(2), {
  env: process.env,
  cluster,
  clock: systemClock,
  print: (line) => console.log(line),
  waitForStopSignal: () =>
    new Promise((resolve) => {
      process.once("SIGTERM", resolve);
      process.once("SIGINT", resolve);
    }),
});
process.exit(code);

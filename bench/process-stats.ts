import { readFileSync } from "node:fs";

const CLOCK_TICKS_PER_SECOND = 100;

/** User plus system CPU seconds a process has used so far (from /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/** A /proc/<pid>/status size line (VmRSS, VmHWM) in MiB. */
export function memoryMib(pid: number, field: "VmRSS" | "VmHWM"): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

export interface ProcessUsage {
  /** CPU seconds used per wall-clock second (1.0 = one core busy). */
  cpuCores: number;
  peakRssMib: number;
}

/** A process and its descendants (the workers of WORKERS > 1), from /proc's children lists. */
function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .trim()
      .split(" ")
      .filter((text) => text !== "")
      .map(Number);
  } catch {
    // Gone already, or no children list: the process alone.
  }
  return [pid, ...children.flatMap(processTree)];
}

/**
 * Samples the CPU time and RSS of a process and its descendants every 50 ms until stopped;
 * both are sums over the processes found at the start. A process that exits meanwhile keeps
 * its last sample, so generators can be watched to their end.
 */
export function watchProcess(pid: number): { stop(): ProcessUsage } {
  const pids = processTree(pid);
  const total = (measure: (one: number) => number) =>
    pids.reduce((sum, one) => sum + measure(one), 0);
  const startCpu = total(cpuSeconds);
  const startTime = performance.now();
  let lastCpu = startCpu;
  let lastTime = startTime;
  let peakRssMib = total((one) => memoryMib(one, "VmRSS"));
  const sample = () => {
    try {
      const cpu = total(cpuSeconds);
      peakRssMib = Math.max(
        peakRssMib,
        total((one) => memoryMib(one, "VmRSS")),
      );
      lastCpu = cpu;
      lastTime = performance.now();
    } catch {
      clearInterval(timer);
    }
  };
  const timer = setInterval(sample, 50);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return { cpuCores: (lastCpu - startCpu) / ((lastTime - startTime) / 1000), peakRssMib };
    },
  };
}

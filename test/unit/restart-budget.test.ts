import { describe, expect, it } from "vitest";
import { createRestartBudget } from "../../src/cluster.js";

describe("createRestartBudget", () => {
  const policy = { delayMs: 1_000, maxRestarts: 3, windowMs: 60_000 };

  it("allows maxRestarts replacements within the window, and no more", () => {
    let now = 0;
    const budget = createRestartBudget(policy, () => now);
    expect([budget.take(), budget.take(), budget.take()]).toEqual([true, true, true]);
    now = 59_999;
    expect(budget.take()).toBe(false);
  });

  it("allows one more as each replacement leaves the window", () => {
    let now = 0;
    const budget = createRestartBudget(policy, () => now);
    budget.take();
    now = 10_000;
    budget.take();
    budget.take();
    expect(budget.take()).toBe(false);
    now = 60_000;
    expect(budget.take()).toBe(true);
    expect(budget.take()).toBe(false);
    now = 70_000;
    expect(budget.take()).toBe(true);
  });
});

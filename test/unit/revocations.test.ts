import { describe, expect, it } from "vitest";
import { createRevocationList, type RevocationUpdate } from "../../src/tokens/revocations.js";

const MINUTE = 60_000;

function listAt(start: number) {
  const clock = { now: start };
  const list = createRevocationList({ clock: () => clock.now, retentionMs: 15 * MINUTE });
  return { clock, list };
}

/** Collects a watch's updates as they come. */
function collect(iterable: AsyncIterable<RevocationUpdate>) {
  const updates: RevocationUpdate[] = [];
  const done = (async () => {
    for await (const update of iterable) {
      updates.push(update);
    }
  })();
  return { updates, done };
}

describe("createRevocationList", () => {
  it("knows revoked sessions and forgets them after the retention window", () => {
    const { clock, list } = listAt(Date.parse("2026-11-23T12:00:00Z"));
    list.add({ sessionIds: ["a", "b"], revokeTime: new Date(clock.now) });
    list.add({ sessionIds: ["old"], revokeTime: new Date(clock.now - 16 * MINUTE) });
    expect(list.isRevoked("a")).toBe(true);
    expect(list.isRevoked("old")).toBe(false);
    clock.now += 15 * MINUTE + 1;
    list.prune();
    expect(list.isRevoked("a")).toBe(false);
    expect(list.snapshot()).toEqual([]);
  });

  it("streams a snapshot, then only sessions it did not know, until aborted", async () => {
    const { clock, list } = listAt(Date.parse("2026-11-23T12:00:00Z"));
    list.add({ sessionIds: ["a"], revokeTime: new Date(clock.now) });
    const stop = new AbortController();
    const { updates, done } = collect(list.watch(stop.signal));
    await expect.poll(() => updates.length).toBe(1);
    list.add({ sessionIds: ["a", "b"], revokeTime: new Date(clock.now) });
    list.add({ sessionIds: ["b"], revokeTime: new Date(clock.now) });
    list.add({ sessionIds: ["c"], revokeTime: new Date(clock.now) });
    await expect.poll(() => updates.length).toBe(3);
    stop.abort();
    await done;
    expect(updates.map(({ sessionIds, snapshot }) => ({ sessionIds, snapshot }))).toEqual([
      { sessionIds: ["a"], snapshot: true },
      { sessionIds: ["b"], snapshot: false },
      { sessionIds: ["c"], snapshot: false },
    ]);
  });

  it("ends every watch when closed", async () => {
    const { list } = listAt(0);
    const watches = [
      collect(list.watch(new AbortController().signal)),
      collect(list.watch(new AbortController().signal)),
    ];
    await expect.poll(() => watches.every(({ updates }) => updates.length === 1)).toBe(true);
    list.close();
    await Promise.all(watches.map(({ done }) => done));
  });
});

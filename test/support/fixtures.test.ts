/**
 * Smoke test of the test-support layer: the fake LLM drives the real opencode binary on two
 * simulated hosts. Each step is timed; the figures are printed at the end.
 */
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFakeLlm, type FakeLlm } from "./fakeLlm.js";
import { createHost, createRepo, type Host } from "./host.js";

const STEP_TIMEOUT = 120_000;

// The fake LLM's directives drive every end-to-end test, which fail loudly if one breaks; these
// step-by-step checks of the harness itself (about 80 s) run with SESSMIG_TEST_SUPPORT=1.
const harness = process.env.SESSMIG_TEST_SUPPORT === "1" ? it : it.skip;

describe("test support: fake LLM + simulated hosts", () => {
  let llm: FakeLlm;
  let a: Host;
  let b: Host;
  let repoA: string;
  let repoB: string;
  let plainID: string;
  const timings: [string, number][] = [];

  async function timed<T>(label: string, fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      timings.push([label, performance.now() - t0]);
    }
  }

  beforeAll(async () => {
    llm = await timed("start fake LLM", () => startFakeLlm());
    a = await timed("create host a", () => createHost("a", { llm }));
    b = await timed("create host b", () => createHost("b", { llm }));
    repoA = path.join(a.workDir, "proj-on-a");
    repoB = path.join(b.workDir, "elsewhere", "proj-on-b");
    const shaA = await timed("createRepo a", () => createRepo(repoA));
    const shaB = await timed("createRepo b", () => createRepo(repoB));
    expect(shaA).toMatch(/^[0-9a-f]{40}$/);
    expect(shaB).toBe(shaA);
  }, STEP_TIMEOUT);

  afterAll(async () => {
    // SESSMIG_KEEP_HOSTS=1 keeps the temp dirs for a look with the real opencode afterwards
    if (process.env.SESSMIG_KEEP_HOSTS) console.log(`kept hosts: ${a?.root} ${b?.root} (repo ${repoA})`);
    else {
      await a?.cleanup();
      await b?.cleanup();
    }
    await llm?.close();
    const width = Math.max(...timings.map(([l]) => l.length));
    console.log(
      ["timings (ms):", ...timings.map(([l, ms]) => `  ${l.padEnd(width)}  ${ms.toFixed(0).padStart(6)}`), `  fake LLM requests: ${llm?.requests}`].join("\n"),
    );
  });

  it("host env is hermetic", () => {
    expect(a.env.HOME).toBe(a.home);
    expect(a.env.XDG_DATA_HOME).toBe(a.dataDir);
    expect(Object.keys(a.env).filter((k) => k.startsWith("AWS_") || k.startsWith("SESSMIG_"))).toEqual([]);
    expect(a.root).not.toBe(b.root);
    expect(existsSync(a.opencodeBin)).toBe(true);
  });

  harness("(a) plain session", async () => {
    const r = await timed("run plain (a)", () => a.run(repoA, "hello MARK-PLAIN-1"));
    plainID = r.sessionID;
    expect(plainID).toMatch(/^ses_/);
    const text = r.events.filter((e) => e.type === "text").map((e) => e.part.text).join("");
    expect(text).toContain("MARK-PLAIN-1");

    const v = await timed("view (1 db call)", () => a.view(plainID));
    expect(v.parentID).toBeNull();
    expect(v.directory).toBe(repoA);
    expect(v.messages).toBe(2);
    expect(v.title).toContain("Fake title");

    const blob = await timed("export", () => a.exportSession(plainID));
    expect(blob.info.id).toBe(plainID);
    expect(blob.messages).toHaveLength(2);
    expect(JSON.stringify(blob)).toContain("ACK: hello MARK-PLAIN-1");
    // the repo stays clean: the config lives in the host's XDG_CONFIG_HOME
    expect(existsSync(path.join(repoA, "opencode.json"))).toBe(false);
  }, STEP_TIMEOUT);

  harness("(b) write tool call creates the file", async () => {
    const r = await timed("run write (b)", () => a.run(repoA, "please write MARK-WRITE [[write notes/fake.txt line one\\nline two]]"));
    const file = path.join(repoA, "notes", "fake.txt");
    expect(await fs.readFile(file, "utf8")).toBe("line one\nline two\n");
    const tool = r.events.find((e) => e.type === "tool_use");
    expect(tool?.part?.tool).toBe("write");
    expect(tool?.part?.state?.status).toBe("completed");
    const c = await a.messageCounts(r.sessionID);
    expect(c.messages).toBe(3); // user, assistant(tool call), assistant(text)
  }, STEP_TIMEOUT);

  harness("(c) task tool call makes a child session", async () => {
    const r = await timed("run task (c)", () => a.run(repoA, "delegate MARK-TASK [[task child MARK-CHILD]]"));
    const rows = await a.sessions();
    const kids = rows.filter((s) => s.parent_id === r.sessionID);
    expect(kids).toHaveLength(1);
    expect(kids[0]!.directory).toBe(repoA);
    const child = await a.view(kids[0]!.id);
    expect(child.parentID).toBe(r.sessionID);
    expect(child.messages).toBeGreaterThanOrEqual(2);
    const childBlob = await a.exportSession(child.id);
    expect(childBlob.info.parentID).toBe(r.sessionID);
    expect(JSON.stringify(childBlob)).toContain("ACK: child MARK-CHILD");
    expect(await a.children(r.sessionID)).toEqual([child.id]);
    expect((await a.view(r.sessionID)).children).toEqual([child.id]);
  }, STEP_TIMEOUT);

  harness("(d) todowrite fills the todo table", async () => {
    const r = await timed("run todo (d)", () => a.run(repoA, "plan MARK-TODO [[todo]]"));
    const todos = await a.todos(r.sessionID);
    expect(todos.map((t) => [t.content, t.status, t.priority, t.position])).toEqual([
      ["First fake todo", "completed", "high", 0],
      ["Second fake todo", "in_progress", "medium", 1],
      ["Third fake todo", "pending", "low", 2],
    ]);
    const v = await timed("view with todos", () => a.view(r.sessionID));
    expect(v.todos).toEqual(todos);
  }, STEP_TIMEOUT);

  harness("(e) continue the plain session with --session", async () => {
    const before = await a.messageCounts(plainID);
    const r = await timed("run continue (e)", () => a.run(repoA, "again MARK-PLAIN-2", { session: plainID }));
    expect(r.sessionID).toBe(plainID);
    const after = await a.messageCounts(plainID);
    expect(after.messages).toBe(before.messages + 2);
    expect(after.parts).toBeGreaterThan(before.parts);
  }, STEP_TIMEOUT);

  harness("big answer", async () => {
    const r = await timed("run big 1 MiB", () => a.run(repoA, "big MARK-BIG [[big 1024]]"));
    const blob = await a.exportSession(r.sessionID);
    expect(JSON.stringify(blob).length).toBeGreaterThan(1024 * 1024);
  }, STEP_TIMEOUT);

  harness("two hosts share the project id of the same repo", async () => {
    const r = await timed("run plain on host b", () => b.run(repoB, "hello from b MARK-B"));
    const [onA] = (await a.sessions()).filter((s) => s.id === plainID);
    const [onB] = (await b.sessions()).filter((s) => s.id === r.sessionID);
    expect(onB!.directory).toBe(repoB);
    expect(onB!.project_id).toBe(onA!.project_id);
    expect(onA!.project_id).not.toBe("global");
    // each host has its own database
    expect((await b.sessions()).map((s) => s.id)).toEqual([r.sessionID]);
  }, STEP_TIMEOUT);
});

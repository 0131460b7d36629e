/**
 * Simulated opencode hosts for tests: each host is a temp dir with its own HOME and XDG dirs, so the
 * real opencode binary keeps a separate opencode.db per host. Sessions are made by `opencode run`
 * against the fake LLM of ./fakeLlm.ts (no network, no real model).
 *
 *   const llm = await startFakeLlm();
 *   const a = await createHost("a", { llm });          // config goes to a's XDG_CONFIG_HOME
 *   const repo = path.join(a.workDir, "proj");
 *   await createRepo(repo);                             // same root commit => same project id everywhere
 *   const { sessionID } = await a.run(repo, "hello MARK-1 [[todo]]");
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { FAKE_MODEL_ID, FAKE_PROVIDER_ID, type FakeLlm } from "./fakeLlm.js";

/**
 * How the tests read opencode's database. `opencode db` costs about two seconds of CPU per process
 * on this 2-core machine, and the suite reads hundreds of times: read-only statements (SELECT /
 * WITH) go to SQLite's own CLI on the same file opencode uses (`$XDG_DATA_HOME/opencode/opencode.db`,
 * WAL included), in the same SQL, when `sqlite3` is installed (Debian: sqlite3; .ci/run installs
 * it). Writes, and every read where sqlite3 is missing or SESSMIG_TEST_SQLITE=opencode, go through
 * `opencode db`.
 */
const SQLITE3 = process.env.SESSMIG_TEST_SQLITE === "opencode" ? undefined : findOnPath("sqlite3");
const READ_ONLY_SQL = /^\s*(SELECT|WITH)\b/i;

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && existsSync(path.join(dir, name))) return path.join(dir, name);
  }
  return undefined;
}

/** One read-only statement through the sqlite3 CLI; JSON rows as `opencode db --format json` prints them. */
async function readWithSqlite3(dbPath: string, sql: string): Promise<string> {
  const result = await execa(SQLITE3!, ["-readonly", "-json", "-cmd", ".timeout 30000", dbPath, sql], { reject: false, stdin: "ignore", timeout: CMD_TIMEOUT_MS });
  if (result.exitCode !== 0) throw new Error(`sqlite3 ${dbPath} failed (exit ${result.exitCode}): ${String(result.stderr).slice(0, 2000)}\n${sql.slice(0, 500)}`);
  return String(result.stdout);
}

/** Repository root (two levels above test/support/). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

/**
 * The opencode binary installed as the devDependency `opencode-ai` (1.18.33). Not through
 * node_modules/.bin/opencode: older builds installed side by side as npm aliases (opencode-1-14, …)
 * declare the same bin name, and npm links whichever it meets first (see ./opencodeVersions.ts).
 */
export function defaultOpencodeBin(): string {
  const bin = path.join(REPO_ROOT, "node_modules", "opencode-ai", "bin", "opencode.exe");
  if (existsSync(bin)) return realpathSync(bin);
  const link = path.join(REPO_ROOT, "node_modules", ".bin", "opencode");
  return existsSync(link) ? realpathSync(link) : link;
}

export const RUN_TIMEOUT_MS = 60_000;
export const CMD_TIMEOUT_MS = 30_000;

export interface SessionRow {
  id: string;
  parent_id: string | null;
  directory: string;
  title: string;
  project_id: string;
  time_updated: number;
}

export interface TodoRow {
  session_id: string;
  content: string;
  status: string;
  priority: string;
  position: number;
  time_created: number;
  time_updated: number;
}

export interface RunResult {
  sessionID: string;
  /** every JSON event line `opencode run --format json` printed */
  events: any[];
  stdout: string;
  stderr: string;
  ms: number;
}

/** opencode's own view of one session, read from its database. */
export interface SessionView {
  id: string;
  title: string;
  directory: string;
  projectID: string;
  parentID: string | null;
  messages: number;
  parts: number;
  todos: TodoRow[];
  children: string[];
}

export interface Host {
  name: string;
  /** the temp dir holding everything of this host */
  root: string;
  /** a place for this host's worktrees (root/work), to give hosts different paths */
  workDir: string;
  home: string;
  dataDir: string; // XDG_DATA_HOME
  configDir: string; // XDG_CONFIG_HOME
  cacheDir: string; // XDG_CACHE_HOME
  stateDir: string; // XDG_STATE_HOME
  /** $XDG_DATA_HOME/opencode/opencode.db */
  dbPath: string;
  /** full environment for child processes (no AWS_* / SESSMIG_* leak from process.env) */
  env: Record<string, string>;
  opencodeBin: string;

  /** Config for the fake LLM. Without repoDir it goes to XDG_CONFIG_HOME/opencode/opencode.json
   *  (the repo stays clean); with repoDir it is written to repoDir/opencode.json. */
  writeOpencodeConfig(llm: FakeLlm): Promise<string>;
  writeOpencodeConfig(repoDir: string, llm: FakeLlm): Promise<string>;
  /** run the opencode binary with this host's env; throws on a non-zero exit */
  opencode(args: string[], opts?: { cwd?: string; timeoutMs?: number; input?: string; env?: Record<string, string> }): Promise<{ stdout: string; stderr: string; exitCode: number }>;
  run(repoDir: string, prompt: string, opts?: { session?: string; timeoutMs?: number }): Promise<RunResult>;
  db<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  sessions(): Promise<SessionRow[]>;
  exportSession(id: string): Promise<any>;
  messageCounts(id: string): Promise<{ messages: number; parts: number }>;
  todos(id: string): Promise<TodoRow[]>;
  children(id: string): Promise<string[]>;
  /** opencode's view of one session; views asked for in the same tick share one `opencode db`. */
  view(id: string): Promise<SessionView>;
  /** Several sessions' views through one `opencode db` (in the order asked). */
  views(ids: string[]): Promise<SessionView[]>;
  cleanup(): Promise<void>;
}

const ID_RE = /^(ses|msg|prt)_[0-9A-Za-z]+$/;

/** A session/message/part id, checked, quoted as an SQL literal. */
export function sqlId(id: string): string {
  if (!ID_RE.test(id)) throw new Error(`not an opencode id: ${JSON.stringify(id)}`);
  return `'${id}'`;
}

/** Minimal base env: nothing from process.env but PATH, LANG, TMPDIR (and a few harmless ones). */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    LANG: process.env.LANG ?? "C.UTF-8",
    TMPDIR: process.env.TMPDIR ?? os.tmpdir(),
  };
  for (const k of ["LC_ALL", "TZ", "SYSTEMROOT"]) {
    const v = process.env[k];
    if (v !== undefined) env[k] = v;
  }
  return env;
}

/** Fixed identity and dates: the root commit hash is the same on every call. */
export function gitEnv(): Record<string, string> {
  return {
    ...baseEnv(),
    HOME: os.tmpdir(),
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_AUTHOR_NAME: "Sessmig Test",
    GIT_AUTHOR_EMAIL: "test@sessmig.invalid",
    GIT_AUTHOR_DATE: "2024-01-01T00:00:00Z",
    GIT_COMMITTER_NAME: "Sessmig Test",
    GIT_COMMITTER_EMAIL: "test@sessmig.invalid",
    GIT_COMMITTER_DATE: "2024-01-01T00:00:00Z",
  };
}

async function git(cwd: string, args: string[]): Promise<string> {
  const r = await execa("git", args, { cwd, env: gitEnv(), extendEnv: false, stdin: "ignore" });
  return r.stdout.trim();
}

async function rootCommit(dir: string): Promise<string> {
  const out = await git(dir, ["rev-list", "--max-parents=0", "HEAD"]);
  return out.split("\n").pop()!.trim();
}

/** git init DIR with one deterministic commit (README.md). Returns the root commit sha. */
export async function createRepo(dir: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  await git(dir, ["init", "-q", "-b", "main"]);
  await fs.writeFile(path.join(dir, "README.md"), "# sessmig test repo\n\nA fixture repository.\n");
  await git(dir, ["add", "README.md"]);
  await git(dir, ["commit", "-q", "--no-gpg-sign", "-m", "initial commit"]);
  return rootCommit(dir);
}

/** git clone SRC DST (same root commit, so the same opencode project id). Returns the root sha. */
export async function cloneRepo(src: string, dst: string): Promise<string> {
  await fs.mkdir(path.dirname(dst), { recursive: true });
  await git(path.dirname(dst), ["clone", "-q", src, dst]);
  return rootCommit(dst);
}

/** spawn with stdout/stderr on real file descriptors; resolves on exit (never rejects on exit code). */
function spawnToFds(
  file: string,
  args: string[],
  o: { cwd: string; env: Record<string, string>; timeoutMs: number; input?: string; stdoutFd: number; stderrFd: number },
): Promise<{ exitCode: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: o.cwd,
      env: o.env,
      stdio: [o.input !== undefined ? "pipe" : "ignore", o.stdoutFd, o.stderrFd],
    });
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 3000);
    }, o.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      reject(e);
    });
    child.on("close", (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve({ exitCode, signal, timedOut });
    });
    if (o.input !== undefined && child.stdin) {
      child.stdin.on("error", () => {});
      child.stdin.end(o.input);
    }
  });
}

/** Parse `opencode run --format json` output: one JSON event a line (non-JSON lines skipped). */
export function parseEvents(stdout: string): any[] {
  const events: any[] = [];
  for (const line of stdout.split("\n")) {
    const t = line.trim();
    if (!t.startsWith("{")) continue;
    try {
      events.push(JSON.parse(t));
    } catch {
      /* not an event */
    }
  }
  return events;
}

export function fakeLlmConfig(llm: FakeLlm): Record<string, unknown> {
  const model = `${FAKE_PROVIDER_ID}/${FAKE_MODEL_ID}`;
  return {
    $schema: "https://opencode.ai/config.json",
    provider: {
      [FAKE_PROVIDER_ID]: {
        npm: "@ai-sdk/openai-compatible",
        name: "Fake LLM",
        options: { baseURL: llm.url, apiKey: "fake-key" },
        models: {
          [FAKE_MODEL_ID]: { name: "Fake model", tool_call: true, limit: { context: 200000, output: 32000 } },
        },
      },
    },
    model,
    small_model: model,
    share: "disabled",
    autoupdate: false,
    permission: { edit: "allow", bash: "allow", webfetch: "allow", external_directory: "allow" },
  };
}

/**
 * What sessmig learnt of each opencode binary (its version, the replay routes of its server, the
 * database file and schema it reads directly: src/opencode/versionCache.ts), shared by the suite's
 * hosts on this machine: a new host starts as a host where sessmig already ran with that opencode
 * (the usual case), instead of paying `opencode --version`, `opencode db path` and a GET /doc again
 * (~3 s of CPU a host, measured). An entry holds only while the binary file is unchanged (the
 * cache's own rule). Tests of the first run ask for `freshCache` (or use another binary path).
 */
const SHARED_VERSION_CACHE = path.join(os.tmpdir(), `sessmig-test-opencode-versions-${process.getuid?.() ?? 0}.json`);

async function seedVersionCache(file: string): Promise<void> {
  const seed = await fs.readFile(SHARED_VERSION_CACHE, "utf8").catch(() => undefined);
  if (!seed) return;
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await fs.writeFile(file, seed, { mode: 0o600 });
}

async function harvestVersionCache(file: string): Promise<void> {
  try {
    // Only the binaries installed for the suite: a test's wrapper script in a temp folder is its own.
    const learnt = Object.fromEntries(
      Object.entries(JSON.parse(await fs.readFile(file, "utf8")) as Record<string, unknown>).filter(([binary]) => binary.startsWith(REPO_ROOT)),
    );
    if (Object.keys(learnt).length === 0) return;
    const known = JSON.parse(await fs.readFile(SHARED_VERSION_CACHE, "utf8").catch(() => "{}")) as Record<string, unknown>;
    const temp = `${SHARED_VERSION_CACHE}.${process.pid}.${Date.now()}.tmp`;
    await fs.writeFile(temp, JSON.stringify({ ...known, ...learnt }, null, 2), { mode: 0o600 });
    await fs.rename(temp, SHARED_VERSION_CACHE);
  } catch {
    // nothing learnt on this host, or a damaged file: the next host learns it again
  }
}

export async function createHost(
  name: string,
  opts: { opencodeBin?: string; root?: string; llm?: FakeLlm; freshCache?: boolean; runsAttached?: boolean } = {},
): Promise<Host> {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, "_");
  const root = opts.root
    ? (await fs.mkdir(opts.root, { recursive: true }), path.resolve(opts.root))
    : await fs.mkdtemp(path.join(os.tmpdir(), `sessmig-test-${safe}-`));
  const home = path.join(root, "home");
  const dataDir = path.join(root, "xdg", "data");
  const configDir = path.join(root, "xdg", "config");
  const cacheDir = path.join(root, "xdg", "cache");
  const stateDir = path.join(root, "xdg", "state");
  const workDir = path.join(root, "work");
  for (const d of [home, dataDir, configDir, cacheDir, stateDir, workDir]) await fs.mkdir(d, { recursive: true });

  const env: Record<string, string> = {
    ...baseEnv(),
    HOME: home,
    USER: "sessmig",
    XDG_DATA_HOME: dataDir,
    XDG_CONFIG_HOME: configDir,
    XDG_CACHE_HOME: cacheDir,
    XDG_STATE_HOME: stateDir,
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    npm_config_registry: "http://127.0.0.1:9/",
    NO_COLOR: "1",
  };
  const opencodeBin = opts.opencodeBin ?? defaultOpencodeBin();
  const versionCacheFile = path.join(cacheDir, "sessmig", "opencode-versions.json");
  if (opts.freshCache !== true) await seedVersionCache(versionCacheFile);

  // stdout/stderr go to files, never pipes: opencode (Bun) exits without draining a full pipe, so
  // large `export` / `db --format json` / `run --format json` output read through a pipe is cut at a
  // multiple of 64 KiB with exit 0 (anomalyco/opencode #29330, #14948). Measured here: a 270 KB
  // export came out as 65536 or 131072 bytes through a slow pipe, complete when redirected to a file.
  const outDir = path.join(root, "tmp");
  await fs.mkdir(outDir, { recursive: true });
  let outSeq = 0;
  const opencode: Host["opencode"] = async (args, o = {}) => {
    const n = ++outSeq;
    const outFile = path.join(outDir, `opencode-${process.pid}-${n}.out`);
    const errFile = path.join(outDir, `opencode-${process.pid}-${n}.err`);
    // real file descriptors: execa's `{file: path}` target is fed through a pipe and truncates too
    // (measured), and execa's types take no raw fd, hence node:child_process.
    const out = await fs.open(outFile, "w");
    const err = await fs.open(errFile, "w");
    try {
      const r = await spawnToFds(opencodeBin, args, {
        cwd: o.cwd ?? root,
        env: o.env ? { ...env, ...o.env } : env,
        timeoutMs: o.timeoutMs ?? CMD_TIMEOUT_MS,
        input: o.input,
        stdoutFd: out.fd,
        stderrFd: err.fd,
      });
      const stdout = await fs.readFile(outFile, "utf8").catch(() => "");
      const stderr = await fs.readFile(errFile, "utf8").catch(() => "");
      if (r.exitCode !== 0 || r.timedOut) {
        throw new Error(
          `opencode ${args.join(" ").slice(0, 200)} failed on host ${name} (exit ${r.exitCode}${r.timedOut ? ", timed out" : ""}${r.signal ? `, ${r.signal}` : ""}):\n${stderr.slice(-2000)}\n${stdout.slice(-1000)}`,
        );
      }
      return { stdout, stderr, exitCode: r.exitCode ?? 0 };
    } finally {
      await out.close().catch(() => {});
      await err.close().catch(() => {});
      await fs.rm(outFile, { force: true });
      await fs.rm(errFile, { force: true });
    }
  };

  const dbPath = path.join(dataDir, "opencode", "opencode.db");
  const db = async <T = Record<string, unknown>>(sql: string): Promise<T[]> => {
    const stdout = SQLITE3 && READ_ONLY_SQL.test(sql) && existsSync(dbPath)
      ? await readWithSqlite3(dbPath, sql)
      : (await opencode(["db", sql, "--format", "json"])).stdout;
    const t = stdout.trim();
    return t ? (JSON.parse(t) as T[]) : [];
  };

  const todos = (id: string) => db<TodoRow>(`SELECT * FROM todo WHERE session_id = ${sqlId(id)} ORDER BY position`);
  const children = async (id: string) =>
    (await db<{ id: string }>(`SELECT id FROM session WHERE parent_id = ${sqlId(id)} ORDER BY time_created`)).map((r) => r.id);

  // `opencode run` attached to one `opencode serve` of this host (see RunServer), unless asked with
  // runsAttached: false (the plugin tests: a run's own process must load the plugin) or
  // SESSMIG_TEST_RUN_ATTACHED=0: then each turn is its own process.
  // Other builds run each turn as its own process: 1.17.19's attached client fails (exit 1, measured).
  const attached = (opts.runsAttached ?? true) && opencodeBin === defaultOpencodeBin() && process.env.SESSMIG_TEST_RUN_ATTACHED !== "0";
  let runServer: RunServer | undefined;

  async function writeOpencodeConfig(a: string | FakeLlm, b?: FakeLlm): Promise<string> {
    await runServer?.stop(); // the server read the old configuration; the next run starts another
    runServer = undefined;
    const [repoDir, llm] = typeof a === "string" ? [a, b!] : [undefined, a];
    const file = repoDir ? path.join(repoDir, "opencode.json") : path.join(configDir, "opencode", "opencode.json");
    await fs.mkdir(path.dirname(file), { recursive: true });
    await fs.writeFile(file, JSON.stringify(fakeLlmConfig(llm), null, 2) + "\n");
    return file;
  }

  const viewBatch = batchViews(name, db);

  const host: Host = {
    name,
    root,
    workDir,
    home,
    dataDir,
    configDir,
    cacheDir,
    stateDir,
    dbPath,
    env,
    opencodeBin,
    writeOpencodeConfig: writeOpencodeConfig as Host["writeOpencodeConfig"],
    opencode,

    async run(repoDir, prompt, o = {}) {
      const args = ["run", "--format", "json"];
      if (o.session) args.push("--session", o.session);
      // A folder outside any git checkout (opencode's global project) runs as its own process: the
      // attached client printed nothing there (1.18.33, measured).
      const attach = attached && existsSync(path.join(repoDir, ".git"));
      if (attach) {
        runServer ??= new RunServer(opencodeBin, env, root);
        args.push("--attach", await runServer.url(), "--dir", repoDir);
      }
      args.push(prompt);
      const t0 = performance.now();
      // The attached client reads the server's password from its environment (not on its command line).
      const r = await opencode(args, { cwd: repoDir, timeoutMs: o.timeoutMs ?? RUN_TIMEOUT_MS, ...(attach ? { env: { OPENCODE_SERVER_PASSWORD: runServer!.password } } : {}) });
      const ms = performance.now() - t0;
      const events = parseEvents(r.stdout);
      const err = events.find((e) => e?.type === "error");
      if (err) throw new Error(`opencode run on host ${name} reported an error: ${JSON.stringify(err).slice(0, 2000)}`);
      const sessionID = events.find((e) => typeof e?.sessionID === "string")?.sessionID as string | undefined;
      if (!sessionID) throw new Error(`opencode run on host ${name} printed no session id:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`);
      return { sessionID, events, stdout: r.stdout, stderr: r.stderr, ms };
    },

    db,

    sessions: () =>
      db<SessionRow>("SELECT id, parent_id, directory, title, project_id, time_updated FROM session ORDER BY time_created"),

    async exportSession(id) {
      const { stdout } = await opencode(["export", id]);
      return JSON.parse(stdout);
    },

    // Through the view batcher: counts asked for in the same tick share one `opencode db`.
    messageCounts: (id) =>
      viewBatch.load(id).then(
        (view) => ({ messages: view.messages, parts: view.parts }),
        (error: unknown) => {
          if (error instanceof SessionNotFound) return { messages: 0, parts: 0 };
          throw error;
        },
      ),

    todos,
    children,

    view: (id) => viewBatch.load(id),
    views: (ids) => Promise.all(ids.map((id) => viewBatch.load(id))),

    async cleanup() {
      await runServer?.stop();
      await harvestVersionCache(versionCacheFile);
      await fs.rm(root, { recursive: true, force: true, maxRetries: 3 });
    },
  };

  if (opts.llm) await host.writeOpencodeConfig(opts.llm);
  return host;
}

class SessionNotFound extends Error {}

/** Servers still running in this process: stopped when it exits, whatever a test file forgot. */
const RUN_SERVERS = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of RUN_SERVERS) child.kill("SIGKILL");
});

/**
 * One `opencode serve` per host that its `opencode run --attach` turns go through. A standalone
 * `opencode run` boots opencode's whole instance for each turn: 3.0–3.5 s of CPU (measured on
 * 1.18.33 here), against 0.9–1.1 s for an attached client; the suite makes a few hundred turns.
 * The sessions are the same opencode sessions (the server runs the same code on the same
 * database, in the --dir given). Started on the first turn (loopback, random port, a password),
 * stopped with the host.
 */
class RunServer {
  private started: Promise<string> | undefined;
  private child: ChildProcess | undefined;
  /** The server's password (test-only, loopback): the attached client gets it in OPENCODE_SERVER_PASSWORD. */
  readonly password = randomBytes(18).toString("base64url");

  constructor(
    private readonly bin: string,
    private readonly env: Record<string, string>,
    private readonly root: string,
  ) {}

  url(): Promise<string> {
    this.started ??= this.start();
    return this.started;
  }

  private async start(): Promise<string> {
    const log = path.join(this.root, "tmp", `run-server-${process.pid}-${Date.now()}.log`);
    await fs.mkdir(path.dirname(log), { recursive: true });
    const out = await fs.open(log, "w");
    const child = spawn(this.bin, ["serve", "--hostname", "127.0.0.1", "--port", "0", "--mdns=false"], {
      cwd: this.root,
      env: { ...this.env, OPENCODE_SERVER_PASSWORD: this.password },
      stdio: ["ignore", out.fd, out.fd],
    });
    await out.close();
    this.child = child;
    // Never what keeps a process alive (the bench removes its hosts without cleanup()): the exit
    // hook above stops it.
    child.unref();
    RUN_SERVERS.add(child);
    child.once("exit", () => RUN_SERVERS.delete(child));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const text = await fs.readFile(log, "utf8").catch(() => "");
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(text);
      if (match) return match[1]!;
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`opencode serve for attached runs did not start: ${text.slice(-2000)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}

type ViewRow = {
  id: string;
  title: string;
  directory: string;
  project_id: string;
  parent_id: string | null;
  messages: number;
  parts: number;
  children: string | null;
  todos: string | null;
};

/**
 * Views asked for in the same tick go to opencode in one query: every `opencode db` process costs
 * about two seconds of CPU here, and tests ask for several sessions at once.
 */
function batchViews(hostName: string, db: <T>(sql: string) => Promise<T[]>) {
  let pending: Map<string, Array<{ resolve(view: SessionView): void; reject(error: unknown): void }>> | undefined;
  const flush = async (batch: NonNullable<typeof pending>) => {
    const list = [...batch.keys()].map(sqlId).join(",");
    try {
      const rows = await db<ViewRow>(
        `SELECT s.id, s.title, s.directory, s.project_id, s.parent_id,
           (SELECT count(*) FROM message WHERE session_id = s.id) AS messages,
           (SELECT count(*) FROM part WHERE session_id = s.id) AS parts,
           (SELECT json_group_array(id) FROM (SELECT id FROM session WHERE parent_id = s.id ORDER BY time_created)) AS children,
           (SELECT json_group_array(json_object('session_id', session_id, 'content', content, 'status', status,
                     'priority', priority, 'position', position, 'time_created', time_created, 'time_updated', time_updated))
              FROM (SELECT * FROM todo WHERE session_id = s.id ORDER BY position)) AS todos
         FROM session s WHERE s.id IN (${list})`,
      );
      const byId = new Map(rows.map((row) => [row.id, row]));
      for (const [id, waiters] of batch) {
        const row = byId.get(id);
        for (const waiter of waiters) {
          if (!row) waiter.reject(new SessionNotFound(`session ${id} not found on host ${hostName}`));
          else
            waiter.resolve({
              id: row.id,
              title: row.title,
              directory: row.directory,
              projectID: row.project_id,
              parentID: row.parent_id ?? null,
              messages: Number(row.messages),
              parts: Number(row.parts),
              todos: row.todos ? (JSON.parse(row.todos) as TodoRow[]) : [],
              children: row.children ? (JSON.parse(row.children) as string[]) : [],
            });
        }
      }
    } catch (error) {
      for (const waiters of batch.values()) for (const waiter of waiters) waiter.reject(error);
    }
  };
  return {
    load(id: string): Promise<SessionView> {
      sqlId(id);
      return new Promise<SessionView>((resolve, reject) => {
        if (!pending) {
          pending = new Map();
          const batch = pending;
          setImmediate(() => {
            pending = undefined;
            void flush(batch);
          });
        }
        const waiters = pending.get(id) ?? [];
        waiters.push({ resolve, reject });
        pending.set(id, waiters);
      });
    },
  };
}

/**
 * A fake OpenAI-compatible chat-completions server for driving the real `opencode run`
 * without any LLM. It listens on 127.0.0.1 (random port) and streams
 * `chat.completion.chunk` SSE events: deltas, a chunk with `finish_reason`, a usage chunk, `[DONE]`.
 *
 * Behaviour is driven by directives in the text of the LAST user message of each request
 * (opencode wraps a prompt that contains spaces in double quotes; the server strips them):
 *
 *   [[write PATH CONTENT...]]  `write` tool call {filePath, content}. PATH is one token without
 *                              whitespace; a relative PATH is resolved against the "Working
 *                              directory:" opencode puts in the system prompt. CONTENT is the rest
 *                              up to `]]` (a literal `\n` becomes a newline). Use it for NEW files:
 *                              opencode refuses to overwrite a file it has not read first.
 *   [[task PROMPT...]]         `task` tool call {description, prompt, subagent_type: "general"}:
 *                              opencode makes a CHILD session whose own request is answered (as any
 *                              prompt, so PROMPT may itself carry a marker). PROMPT defaults to
 *                              "subtask for <the prompt text>".
 *   [[todo]]                   `todowrite` tool call with 3 todos (pending/in_progress/completed,
 *                              priorities high/medium/low).
 *   [[big N]]                  the final answer is a plain text of about N KiB, streamed in 4 KiB
 *                              chunks.
 *   [[rewrite PATH CONTENT...]] two tool calls: `read` {filePath} then `write` {filePath, content}
 *                              (opencode refuses to overwrite a file it has not read in the
 *                              session), so a later turn can give an existing file other content.
 *   [[bash COMMAND...]]        `bash` tool call {command, description}, run in the working
 *                              directory. `[[bash seq 1 30000]]` prints ≈170 KB, over opencode's
 *                              tool-output truncation limit (2000 lines / 50 KB on 1.18.33), so the
 *                              part gets `metadata.outputPath` and `truncated: true`.
 *
 * Several directives may appear in one prompt: tool directives (write, rewrite, bash, task, todo) run one per step,
 * in order. The step is derived statelessly from the request: the number of assistant messages
 * carrying tool_calls after the last user message. When every tool directive has run, the model
 * answers with text and finish_reason "stop": the [[big N]] text if given, otherwise
 * `ACK: <prompt text without directives>` (so tests can search for a marker in the prompt).
 *
 * Title requests (opencode's small_model, system prompt "You are a title generator") get
 * `Fake title: <first words of the prompt>` (≤ 50 chars). Anything not understood (no messages,
 * unparseable JSON, other endpoints) gets a plain text answer or a 404, never a hang.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";

export interface FakeLlmRequestLog {
  kind: "title" | "tool" | "text" | "big" | "other";
  /** name of the tool called, for kind "tool" */
  tool?: string;
  lastUserText: string;
  lastRole: string;
}

export interface FakeLlm {
  /** base URL for the provider's options.baseURL, e.g. http://127.0.0.1:PORT/v1 */
  url: string;
  port: number;
  /** number of chat-completions requests served so far */
  readonly requests: number;
  /** a short summary of every chat-completions request, in order */
  readonly log: FakeLlmRequestLog[];
  close(): Promise<void>;
}

export const FAKE_MODEL_ID = "fake-model";
export const FAKE_PROVIDER_ID = "fake";

type Msg = { role: string; content?: unknown; tool_calls?: unknown[] };

interface Directive {
  name: string;
  arg: string;
}

interface ToolCall {
  name: string;
  args: Record<string, unknown>;
}

type Plan =
  | { kind: "text"; text: string; logKind: FakeLlmRequestLog["kind"] }
  | { kind: "tool"; call: ToolCall };

const DIRECTIVE_RE = /\[\[(\w+)(?:\s+([\s\S]*?))?\]\]/g;

/** Text of a message's content (string, or an array of {type:"text", text} parts). */
function contentText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === "object" && typeof (p as { text?: unknown }).text === "string" ? (p as { text: string }).text : ""))
      .join("\n");
  }
  return "";
}

/** opencode run quotes a prompt containing spaces: `"a b"` with inner quotes as `\"`. */
function unquote(text: string): string {
  const t = text.trim();
  if (t.length >= 2 && t.startsWith('"') && t.endsWith('"')) return t.slice(1, -1).replace(/\\"/g, '"');
  return t;
}

function parseDirectives(text: string): Directive[] {
  const out: Directive[] = [];
  for (const m of text.matchAll(DIRECTIVE_RE)) out.push({ name: m[1]!.toLowerCase(), arg: (m[2] ?? "").trim() });
  return out;
}

function stripDirectives(text: string): string {
  return text.replace(DIRECTIVE_RE, " ").replace(/\s+/g, " ").trim();
}

function workingDirectory(messages: Msg[]): string | undefined {
  for (const m of messages) {
    if (m.role !== "system") continue;
    const match = /Working directory:\s*(\S+)/.exec(contentText(m.content));
    if (match) return match[1];
  }
  return undefined;
}

function bigText(kib: number): string {
  const target = Math.max(1, Math.floor(kib)) * 1024;
  const lines: string[] = [];
  let size = 0;
  for (let i = 1; size < target; i++) {
    const line = `big line ${String(i).padStart(6, "0")} lorem ipsum dolor sit amet consectetur adipiscing elit\n`;
    lines.push(line);
    size += line.length;
  }
  return lines.join("");
}

function toolCallsFor(d: Directive, promptText: string, cwd: string | undefined): ToolCall[] {
  if (d.name === "rewrite") {
    const write = toolCallFor({ name: "write", arg: d.arg }, promptText, cwd)!;
    return [{ name: "read", args: { filePath: write.args.filePath } }, write];
  }
  const call = toolCallFor(d, promptText, cwd);
  return call ? [call] : [];
}

function toolCallFor(d: Directive, promptText: string, cwd: string | undefined): ToolCall | undefined {
  switch (d.name) {
    case "bash":
      return { name: "bash", args: { command: d.arg || "true", description: "Fake shell command" } };
    case "write": {
      const m = /^(\S+)\s*([\s\S]*)$/.exec(d.arg);
      const rel = m?.[1] ?? "fake-output.txt";
      const filePath = path.isAbsolute(rel) ? rel : path.resolve(cwd ?? process.cwd(), rel);
      const content = (m?.[2] ?? "").replace(/\\n/g, "\n");
      return { name: "write", args: { filePath, content: content.endsWith("\n") ? content : content + "\n" } };
    }
    case "task": {
      const prompt = d.arg || `subtask for ${promptText || "the parent"}`;
      return { name: "task", args: { description: "Fake subtask", prompt, subagent_type: "general" } };
    }
    case "todo":
    case "todos":
      return {
        name: "todowrite",
        args: {
          todos: [
            { content: "First fake todo", status: "completed", priority: "high" },
            { content: "Second fake todo", status: "in_progress", priority: "medium" },
            { content: "Third fake todo", status: "pending", priority: "low" },
          ],
        },
      };
    default:
      return undefined;
  }
}

function plan(body: unknown): { plan: Plan; log: FakeLlmRequestLog } {
  const messages: Msg[] = Array.isArray((body as { messages?: unknown })?.messages)
    ? ((body as { messages: unknown[] }).messages.filter((m) => m && typeof m === "object") as Msg[])
    : [];
  const lastRole = messages.at(-1)?.role ?? "none";
  let lastUserIdx = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]!.role === "user") {
      lastUserIdx = i;
      break;
    }
  }
  const rawUser = lastUserIdx >= 0 ? unquote(contentText(messages[lastUserIdx]!.content)) : "";
  const promptText = stripDirectives(rawUser);
  const base = { lastUserText: rawUser.slice(0, 200), lastRole };

  const system = messages.filter((m) => m.role === "system").map((m) => contentText(m.content)).join("\n");
  if (/title generator/i.test(system)) {
    const words = promptText || "session";
    const title = `Fake title: ${words}`.slice(0, 50).trim();
    return { plan: { kind: "text", text: title, logKind: "title" }, log: { kind: "title", ...base } };
  }
  if (lastUserIdx < 0) {
    return { plan: { kind: "text", text: "ACK: (no user message)", logKind: "other" }, log: { kind: "other", ...base } };
  }

  const directives = parseDirectives(rawUser);
  const cwd = workingDirectory(messages);
  const calls = directives.flatMap((d) => toolCallsFor(d, promptText, cwd));
  const step = messages.slice(lastUserIdx + 1).filter((m) => m.role === "assistant" && Array.isArray(m.tool_calls) && m.tool_calls.length > 0).length;
  if (step < calls.length) {
    const call = calls[step]!;
    return { plan: { kind: "tool", call }, log: { kind: "tool", tool: call.name, ...base } };
  }
  const big = directives.find((d) => d.name === "big");
  if (big) {
    const n = Number.parseFloat(big.arg) || 1;
    return { plan: { kind: "text", text: bigText(n), logKind: "big" }, log: { kind: "big", ...base } };
  }
  const text = `ACK: ${promptText || "(empty prompt)"}${calls.length ? ` (done ${calls.map((c) => c.name).join(", ")})` : ""}`;
  return { plan: { kind: "text", text, logKind: "text" }, log: { kind: "text", ...base } };
}

function chunkText(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length ? out : [""];
}

export async function startFakeLlm(): Promise<FakeLlm> {
  let requests = 0;
  let callSeq = 0;
  const log: FakeLlmRequestLog[] = [];
  const sockets = new Set<import("node:net").Socket>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on("error", () => res.destroy());
    req.on("end", () => {
      try {
        const url = req.url ?? "";
        if (req.method === "GET" && /\/models\/?$/.test(url)) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ object: "list", data: [{ id: FAKE_MODEL_ID, object: "model", owned_by: "fake" }] }));
          return;
        }
        if (req.method !== "POST" || !/chat\/completions\/?$/.test(url.split("?")[0]!)) {
          res.writeHead(404, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { message: `fake llm: no route ${req.method} ${url}` } }));
          return;
        }
        requests++;
        let body: unknown = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        } catch {
          body = {};
        }
        const { plan: p, log: entry } = plan(body);
        log.push(entry);
        const stream = (body as { stream?: unknown }).stream !== false;
        const model = typeof (body as { model?: unknown }).model === "string" ? (body as { model: string }).model : FAKE_MODEL_ID;
        const id = `chatcmpl-fake-${requests}`;
        const created = Math.floor(Date.now() / 1000);
        const usage = { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 };
        const toolCall =
          p.kind === "tool"
            ? { id: `call_fake_${++callSeq}`, type: "function" as const, function: { name: p.call.name, arguments: JSON.stringify(p.call.args) } }
            : undefined;

        if (!stream) {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(
            JSON.stringify({
              id,
              object: "chat.completion",
              created,
              model,
              choices: [
                {
                  index: 0,
                  message: toolCall ? { role: "assistant", content: null, tool_calls: [toolCall] } : { role: "assistant", content: p.kind === "text" ? p.text : "" },
                  finish_reason: toolCall ? "tool_calls" : "stop",
                },
              ],
              usage,
            }),
          );
          return;
        }

        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
        const send = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
        const chunk = (delta: unknown, finish: string | null = null) =>
          send({ id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }] });
        if (toolCall) {
          chunk({ role: "assistant", content: null, tool_calls: [{ index: 0, ...toolCall }] });
          chunk({}, "tool_calls");
        } else {
          const text = p.kind === "text" ? p.text : "";
          const parts = chunkText(text, 4096);
          parts.forEach((t, i) => chunk(i === 0 ? { role: "assistant", content: t } : { content: t }));
          chunk({}, "stop");
        }
        send({ id, object: "chat.completion.chunk", created, model, choices: [], usage });
        res.end("data: [DONE]\n\n");
      } catch (err) {
        if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `fake llm: ${(err as Error).message}` } }));
      }
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    port,
    get requests() {
      return requests;
    },
    get log() {
      return log;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

import { createReadStream } from 'node:fs';

/**
 * Reading an export blob `{info, messages:[{info, parts}]}` one piece at a time, for the replay,
 * the fidelity check and the served export. Its own module so that they share it without a cycle.
 */

/** A blob that is not what an export writes; its message says where. */
export class ReplayInputError extends Error {}

/**
 * A piece of the blob. A message over `maxMessageBytes` (readBlob's option) is neither kept nor
 * parsed: it comes with `value` undefined and its size in `oversized` (bytes).
 */
export type BlobPiece = { kind: 'info'; value: Record<string, unknown> } | { kind: 'message'; index: number; value: unknown; oversized?: number };

/**
 * Yields the blob's `info`, then each element of `messages`, each parsed on its own: only one of
 * them is in memory at a time. `info` must come before `messages` (as every export writes it).
 * Other top-level keys are skipped.
 */
export async function* readBlob(file: string, options: { chunkBytes?: number; maxMessageBytes?: number } = {}): AsyncGenerator<BlobPiece, void, undefined> {
  const splitter = new BlobSplitter(options.maxMessageBytes);
  const stream = createReadStream(file, options.chunkBytes ? { highWaterMark: options.chunkBytes } : {});
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) yield* splitter.feed(chunk);
    splitter.end();
  } finally {
    stream.destroy();
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

class BlobSplitter {
  private depth = 0;
  private inString = false;
  private escape = false;
  /** At depth 1: is the next string a key? */
  private expectKey = false;
  private keyParts: Buffer[] | undefined;
  /** Where the key being read starts in the current chunk. */
  private keyAt = 0;
  private key: string | undefined;
  private inMessages = false;
  private seenInfo = false;
  private seenMessages = false;
  private messages = 0;
  private capture: { kind: 'info' | 'message'; parts: Buffer[]; start: number; depth: number; bytes: number; dropped: boolean } | undefined;
  private offset = 0;

  constructor(private readonly maxMessageBytes = Infinity) {}

  *feed(chunk: Buffer): Generator<BlobPiece> {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (this.inString) {
        if (this.escape) this.escape = false;
        else if (c === BACKSLASH) this.escape = true;
        else if (c === QUOTE) {
          this.inString = false;
          if (this.keyParts) {
            this.keyParts.push(chunk.subarray(this.keyAt, i + 1));
            this.key = JSON.parse(Buffer.concat(this.keyParts).toString('utf8')) as string;
            this.keyParts = undefined;
          }
        }
        continue;
      }
      switch (c) {
        case QUOTE:
          this.inString = true;
          if (this.depth === 1 && this.expectKey) {
            this.keyParts = [];
            this.keyAt = i;
          } else this.scalarAt(i);
          break;
        case 0x7b: // {
        case 0x5b: // [
          if (this.depth === 1 && !this.expectKey && !this.capture) {
            if (this.key === 'info') {
              if (c !== 0x7b) this.fail('info is not an object', i);
              if (this.seenInfo) this.fail('a second info', i);
              this.seenInfo = true;
              this.capture = { kind: 'info', parts: [], start: i, depth: 1, bytes: 0, dropped: false };
            } else if (this.key === 'messages') {
              if (c !== 0x5b) this.fail('messages is not an array', i);
              if (!this.seenInfo) this.fail('messages come before info', i);
              this.inMessages = true;
              this.seenMessages = true;
            }
          } else if (this.inMessages && this.depth === 2 && !this.capture) {
            if (c !== 0x7b) this.fail(`messages[${this.messages}] is not an object`, i);
            this.capture = { kind: 'message', parts: [], start: i, depth: 2, bytes: 0, dropped: false };
          } else if (this.depth === 0 && c !== 0x7b) {
            this.fail('the blob is not a JSON object', i);
          }
          this.depth++;
          if (this.depth === 1) this.expectKey = true;
          break;
        case 0x7d: // }
        case 0x5d: // ]
          if (this.depth === 0) this.fail('unbalanced brackets', i);
          this.depth--;
          if (this.capture && this.depth === this.capture.depth) {
            const { kind, parts, start, dropped, bytes } = this.capture;
            this.capture = undefined;
            if (dropped) {
              yield { kind: 'message', index: this.messages++, value: undefined, oversized: bytes + i + 1 - start };
              break;
            }
            parts.push(chunk.subarray(start, i + 1));
            // parsed in a function of its own, and the bytes let go: only the value lives on across the yield
            const value = parseParts(parts);
            parts.length = 0;
            if (value === undefined) this.fail(kind === 'info' ? 'info is not valid JSON' : `messages[${this.messages}] is not valid JSON`, i);
            if (kind === 'info') yield { kind, value: value as Record<string, unknown> };
            else yield { kind, index: this.messages++, value };
          } else if (this.inMessages && this.depth === 1) {
            this.inMessages = false;
          }
          break;
        case 0x3a: // :
          if (this.depth === 1) this.expectKey = false;
          break;
        case 0x2c: // ,
          if (this.depth === 1) this.expectKey = true;
          break;
        default:
          if (!(c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) this.scalarAt(i);
      }
    }
    if (this.capture) {
      this.capture.bytes += chunk.length - this.capture.start;
      if (this.capture.kind === 'message' && this.capture.bytes > this.maxMessageBytes) {
        // too large to hold: let its bytes go, keep counting them
        this.capture.dropped = true;
        this.capture.parts.length = 0;
      }
      if (!this.capture.dropped) this.capture.parts.push(chunk.subarray(this.capture.start));
      this.capture.start = 0;
    }
    if (this.keyParts) {
      this.keyParts.push(chunk.subarray(this.keyAt));
      if (this.keyParts.reduce((size, part) => size + part.length, 0) > 4096) this.fail('a top-level key longer than 4 KiB', chunk.length);
    }
    this.keyAt = 0;
    this.offset += chunk.length;
  }

  end(): void {
    if (this.depth !== 0 || this.inString) this.fail('the blob ends early (truncated?)', 0);
    if (!this.seenInfo) this.fail('the blob has no info', 0);
    if (!this.seenMessages) this.fail('the blob has no messages', 0);
  }

  /** A scalar (or string) starts outside any capture: only allowed where it cannot be a message. */
  private scalarAt(at: number): void {
    if (this.inMessages && this.depth === 2 && !this.capture) this.fail(`messages[${this.messages}] is not an object`, at);
    if (this.depth === 0) this.fail('the blob is not a JSON object', at);
  }

  private fail(message: string, at: number): never {
    throw new ReplayInputError(`${message} (byte ${this.offset + at})`);
  }
}


function parseParts(parts: Buffer[]): unknown {
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * A streaming pass over one JSON document (an opencode export blob) that never holds the document
 * in memory. It copies the bytes through, and on the way:
 *  - decodes the scalars at the paths a caller asks for (info.id, info.title, …) and reports them;
 *  - optionally replaces some of those scalars (the rebase: info.directory, info.projectID);
 *  - computes a normalized hash, a Merkle hash of the JSON value: whitespace and the order of
 *    object keys do not count (the CLI export and opencode's server print the same value with
 *    different formatting and key order), host-bound values count as null, so equal sessions on
 *    two hosts, through either export path, hash alike.
 *  - optionally buffers a whole value (object or array) at a path a caller asks for, and writes
 *    what the caller makes of it instead (the pull adapters: one summary.diffs entry at a time).
 * Only scalars and those asked-for values are ever buffered, so memory stays flat with size.
 */
export type PathSegment = string | number;
export type JsonPath = readonly PathSegment[];

export interface ScanHooks {
  /** Should the scalar at this path be decoded (and offered to `replace`)? */
  wants?(path: JsonPath): boolean;
  /** A decoded scalar at a wanted path. */
  onScalar?(path: JsonPath, value: unknown): void;
  /** JSON text to write instead of the wanted scalar, or undefined to keep it. */
  replace?(path: JsonPath, value: unknown): string | undefined;
  /** Values (of any kind) at these paths count as null in the normalized hash. */
  volatile?(path: JsonPath): boolean;
  /** Called when any value starts at a path at most `valueStartDepth` long. */
  onValueStart?(path: JsonPath): void;
  /**
   * Should the whole value at this path (object, array or scalar) be buffered, parsed and offered to
   * `replaceValue`? For small values deep in a large document; at most MAX_VALUE_CAPTURE_BYTES each.
   * Values inside a captured one are not offered to `wants` or `captureValue`.
   */
  captureValue?(path: JsonPath): boolean;
  /** JSON text to write instead of a captured value, or undefined to keep its bytes. May throw to refuse the document. */
  replaceValue?(path: JsonPath, value: unknown): string | undefined;
  /** Report paths up to this many segments to the hooks (default HOOK_DEPTH); deeper values are skipped cheaply. */
  pathDepth?: number;
}

export class JsonScanError extends Error {}

/** Paths longer than this are never wanted, volatile or reported (cheap scanning of deep content). */
const HOOK_DEPTH = 6;
const MAX_DEPTH = 512;
const MAX_KEY_BYTES = 4096;
const MAX_CAPTURE_BYTES = 1024 * 1024;
/** A value captured whole (captureValue): one summary.diffs entry holds two file texts at most. */
export const MAX_VALUE_CAPTURE_BYTES = 64 * 1024 * 1024;

const enum Expect {
  Value,
  ValueOrEnd,
  Key,
  KeyOrEnd,
  Colon,
  CommaOrEnd,
  Done,
}

interface HashFrame {
  /** Arrays: the elements' digests, in order. */
  elements: Digester | undefined;
  /** Objects: key digest + value digest per member, sorted when the object closes. */
  entries: Buffer[] | undefined;
  keyDigest: Buffer | undefined;
}

const TAG_SCALAR = 0x73;
const TAG_KEY = 0x6b;
const TAG_ARRAY = 0x61;
const TAG_OBJECT = 0x6f;
const TAG_HASHED = 0x48;
/** Content up to this size is its own digest; longer content is replaced by its sha256. */
const INLINE_BYTES = 48;

/**
 * The digest of one value: a tag and the content itself when short (most JSON values are: no hash
 * to compute), else a tag and the sha256 of tag + content. Unambiguous, because every digest that
 * goes into a container is length-prefixed.
 */
class Digester {
  private parts: Buffer[] = [];
  private size = 0;
  private hash: Hash | undefined;

  constructor(private readonly tag: number) {}

  update(bytes: Buffer): void {
    if (this.hash) {
      this.hash.update(bytes);
      return;
    }
    this.parts.push(bytes.length <= INLINE_BYTES ? Buffer.from(bytes) : bytes);
    this.size += bytes.length;
    if (this.size > INLINE_BYTES) {
      this.hash = createHash('sha256').update(Buffer.of(this.tag));
      for (const part of this.parts) this.hash.update(part);
      this.parts = [];
    }
  }

  finish(): Buffer {
    if (this.hash) return Buffer.concat([Buffer.of(TAG_HASHED), this.hash.digest()]);
    return Buffer.concat([Buffer.of(this.tag), ...this.parts]);
  }
}

function lengthPrefixed(digest: Buffer): Buffer {
  return Buffer.concat([Buffer.of(digest.length), digest]);
}

const NULL_DIGEST = Buffer.from('snull');

interface Frame {
  array: boolean;
  key: string | undefined;
  index: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function isLiteralByte(c: number): boolean {
  // digits, letters (true/false/null/e/E), + - .
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2b || c === 0x2d || c === 0x2e;
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

function isHexDigit(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** After a backslash in a string: " \ / b f n r t (u is handled apart). */
function isEscapeLetter(c: number): boolean {
  return c === QUOTE || c === BACKSLASH || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74;
}

/**
 * Where a literal (a number or a keyword) stands, byte by byte: exactly the grammar JSON.parse
 * takes (RFC 8259: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, `true`, `false`, `null`), so a
 * blob the scanner passes is one JSON.parse would parse. The states marked complete may end it.
 */
const enum Lit {
  Minus, // -            needs a digit
  Zero, // 0 or -0       complete; . e E may follow, no digit
  Int, // [1-9][0-9]*   complete
  Dot, // .              needs a digit
  Frac, // .[0-9]+       complete
  Exp, // e E            needs a sign or a digit
  ExpSign, // e+ e-      needs a digit
  ExpDigits, //          complete
  Word, // true false null, up to literalWordAt
}

const WORDS: Record<number, Buffer> = { 0x74: Buffer.from('true'), 0x66: Buffer.from('false'), 0x6e: Buffer.from('null') };

/** A byte as it reads in an error message. */
function shownByte(c: number): string {
  return c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `0x${c.toString(16).padStart(2, '0')}`;
}

export class JsonScanner extends Transform {
  private readonly hooks: ScanHooks;
  private readonly hashing: boolean;
  private readonly hashFrames: HashFrame[] = [];
  private rootDigest: Buffer | undefined;
  /** The hash of the string, key or literal being read, and where it started in this chunk. */
  private tokenDigest: Digester | undefined;
  private tokenStart = 0;
  private readonly stack: Frame[] = [];
  private expect: Expect = Expect.Value;
  private inString = false;
  /** A backslash was read in the current string; the next byte says which escape. */
  private escape = false;
  /** Hex digits still due after `\u` in the current string. */
  private hexLeft = 0;
  private inLiteral = false;
  private literalState: Lit = Lit.Int;
  private literalWord: Buffer | undefined;
  private literalWordAt = 0;
  /** What the current string or literal is: a key, a captured scalar, or plain. */
  private tokenIsKey = false;
  private capturing = false;
  /** The capture is a whole value (captureValue), not a wanted scalar. */
  private capturingValue = false;
  /** The whole-value capture is of a scalar that `wants` asked for too. */
  private captureWanted = false;
  /** A captured container: the stack depth inside it (0: none). */
  private valueCaptureDepth = 0;
  private captureParts: Buffer[] = [];
  private captureBytes = 0;
  private capturePath: JsonPath = [];
  /** The current scalar is volatile (normalized as null). */
  private scalarVolatile = false;
  /** Depth at which a volatile container started (0: none). */
  private volatileDepth = 0;
  private keyParts: Buffer[] = [];
  private keyBytes = 0;
  private pendingKey: string | undefined;
  private offset = 0;
  /** Where the document's closing brace ended (bytes from the start), once it has. */
  documentEnd: number | undefined;
  /** Total bytes in and out. */
  bytesIn = 0;
  bytesOut = 0;

  private readonly hookDepth: number;

  constructor(hooks: ScanHooks, options: { normalizedHash?: boolean } = {}) {
    super();
    this.hooks = hooks;
    this.hookDepth = Math.max(hooks.pathDepth ?? HOOK_DEPTH, HOOK_DEPTH);
    this.hashing = options.normalizedHash === true;
  }

  /** The normalized hash (hex); valid after the stream ends. */
  normalizedDigest(): string {
    if (!this.hashing || !this.rootDigest) throw new Error('normalized hash not available');
    return createHash('sha256').update(this.rootDigest).digest('hex');
  }

  /**
   * Scans a chunk without passing anything on (no stream): to look at a document, e.g. to find
   * where it ends (documentEnd). Throws JsonScanError as the stream would fail.
   */
  inspect(chunk: Buffer): void {
    this.bytesIn += chunk.length;
    this.scan(chunk);
    this.offset += chunk.length;
    this.pending = [];
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.bytesIn += chunk.length;
      this.scan(chunk);
      this.offset += chunk.length;
      this.pushPending();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.inLiteral || this.inString || this.expect !== Expect.Done) {
        throw new JsonScanError(`unexpected end of JSON after ${this.offset} bytes (truncated?)`);
      }
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  /** Output of the current chunk, pushed as one buffer when the chunk is done (captures split it). */
  private pending: Buffer[] = [];

  private out(buf: Buffer): void {
    if (buf.length === 0) return;
    this.bytesOut += buf.length;
    this.pending.push(buf);
  }

  private pushPending(): void {
    if (this.pending.length === 0) return;
    this.push(this.pending.length === 1 ? this.pending[0] : Buffer.concat(this.pending));
    this.pending = [];
  }

  private fail(message: string, at: number): never {
    throw new JsonScanError(`${message} at byte ${this.offset + at}`);
  }

  private hashOn(): boolean {
    return this.hashing && this.volatileDepth === 0 && !this.scalarVolatile;
  }

  /** A string, key or literal starts at `at`: start digesting its bytes (its raw JSON text). */
  private startToken(tag: number, at: number): void {
    this.tokenDigest = this.hashOn() ? new Digester(tag) : undefined;
    this.tokenStart = at;
  }

  /** Feeds the current token's bytes up to `end` (exclusive) of this chunk. */
  private feedToken(chunk: Buffer, end: number): void {
    if (this.tokenDigest && end > this.tokenStart) this.tokenDigest.update(chunk.subarray(this.tokenStart, end));
    this.tokenStart = end;
  }

  private endToken(chunk: Buffer, end: number): Buffer | undefined {
    this.feedToken(chunk, end);
    const digest = this.tokenDigest?.finish();
    this.tokenDigest = undefined;
    return digest;
  }

  /** A value's digest goes to its container (or becomes the document's). */
  private addDigest(digest: Buffer): void {
    const top = this.hashFrames[this.hashFrames.length - 1];
    if (!top) {
      this.rootDigest = digest;
    } else if (top.elements) {
      top.elements.update(lengthPrefixed(digest));
    } else {
      top.entries!.push(Buffer.concat([lengthPrefixed(top.keyDigest ?? NULL_DIGEST), lengthPrefixed(digest)]));
    }
  }

  private openHashFrame(array: boolean): void {
    if (!this.hashOn()) return;
    this.hashFrames.push(array ? { elements: new Digester(TAG_ARRAY), entries: undefined, keyDigest: undefined } : { elements: undefined, entries: [], keyDigest: undefined });
  }

  private closeHashFrame(): void {
    if (!this.hashOn()) return;
    const frame = this.hashFrames.pop()!;
    if (frame.elements) {
      this.addDigest(frame.elements.finish());
    } else {
      const digester = new Digester(TAG_OBJECT);
      for (const entry of frame.entries!.sort(Buffer.compare)) digester.update(entry);
      this.addDigest(digester.finish());
    }
  }

  private currentPath(): PathSegment[] | undefined {
    if (this.stack.length > this.hookDepth) return undefined;
    return this.stack.map((frame) => (frame.array ? frame.index : (frame.key ?? '\u0000')));
  }

  private scan(chunk: Buffer): void {
    let outStart = 0;
    let capStart = 0;
    let keyStart = 0;
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      if (this.inString) {
        let j = i;
        // After a backslash: its letter, and after \u four hex digits, byte by byte (they may straddle chunks).
        while (j < n && (this.escape || this.hexLeft > 0)) {
          const c = chunk[j]!;
          if (this.escape) {
            this.escape = false;
            if (c === 0x75) this.hexLeft = 4;
            else if (!isEscapeLetter(c)) this.fail(`invalid escape (a backslash, then ${shownByte(c)}) in a string`, j);
          } else {
            if (!isHexDigit(c)) this.fail(`invalid \\u escape (${shownByte(c)} is not a hex digit) in a string`, j);
            this.hexLeft--;
          }
          j++;
        }
        // Fast path: jump to the next quote or (invalid) control character, over plain bytes and
        // whole escapes within the chunk.
        while (j < n) {
          const c = chunk[j]!;
          // Plain bytes: not a quote, a backslash or a control character (one compare for most).
          if (c > BACKSLASH || (c !== QUOTE && c >= 0x20 && c !== BACKSLASH)) {
            j++;
            continue;
          }
          if (c !== BACKSLASH) break;
          const e = j + 1 < n ? chunk[j + 1]! : -1;
          if (e !== 0x75 && isEscapeLetter(e)) {
            j += 2;
            continue;
          }
          break;
        }
        if (j >= n) {
          i = n;
          break;
        }
        if (chunk[j] === BACKSLASH) {
          this.escape = true;
          i = j + 1;
          continue;
        }
        if (chunk[j]! < 0x20) this.fail(`control character ${shownByte(chunk[j]!)} in a string (JSON wants it escaped)`, j);
        // closing quote at j
        this.inString = false;
        const end = j + 1;
        const digest = this.endToken(chunk, end);
        if (this.tokenIsKey) {
          this.appendKey(chunk, keyStart, end);
          this.endKey(digest);
        } else if (this.capturing && this.valueCaptureDepth === 0) {
          this.appendCapture(chunk, capStart, end);
          outStart = this.endCapture(end);
          this.endScalar(digest);
        } else {
          this.endScalar(digest);
        }
        i = end;
        continue;
      }
      if (this.inLiteral) {
        const c = chunk[i]!;
        if (isLiteralByte(c)) {
          this.literalByte(c, chunk, i);
          i++;
          continue;
        }
        this.literalEnd(chunk, i);
        const digest = this.endToken(chunk, i);
        if (this.capturing && this.valueCaptureDepth === 0) {
          this.appendCapture(chunk, capStart, i);
          outStart = this.endCapture(i);
        }
        this.inLiteral = false;
        this.endScalar(digest);
        continue; // re-process c as structure
      }
      const c = chunk[i]!;
      if (isSpace(c)) {
        i++;
        continue;
      }
      if (this.expect === Expect.Done) this.fail('trailing data after the JSON document', i);
      switch (c) {
        case QUOTE: {
          if (this.expect === Expect.Key || this.expect === Expect.KeyOrEnd) {
            this.inString = true;
            this.tokenIsKey = true;
            this.keyParts = [];
            this.keyBytes = 0;
            keyStart = i;
            this.startToken(TAG_KEY, i);
            i++;
            continue;
          }
          const started = this.startScalar(i, chunk, outStart);
          if (started.flushedTo !== undefined) {
            outStart = started.flushedTo;
            capStart = i;
          }
          this.inString = true;
          this.tokenIsKey = false;
          this.startToken(TAG_SCALAR, i);
          i++;
          continue;
        }
        case 0x7b: // {
        case 0x5b: {
          // [
          this.startValue(i);
          if (this.stack.length === 0 && c !== 0x7b) this.fail('the document must be a JSON object', i);
          const path = this.currentPath();
          if (path && this.volatileDepth === 0 && this.hooks.volatile?.(path)) {
            if (this.hashing) this.addDigest(NULL_DIGEST);
            this.volatileDepth = this.stack.length + 1;
          }
          if (this.stack.length >= MAX_DEPTH) this.fail(`JSON nested deeper than ${MAX_DEPTH} levels`, i);
          if (path && !this.capturing && this.hooks.captureValue?.(path)) {
            this.out(chunk.subarray(outStart, i));
            this.beginCapture(path, true);
            outStart = i;
            capStart = i;
            this.valueCaptureDepth = this.stack.length + 1;
          }
          const array = c === 0x5b;
          this.openHashFrame(array);
          this.stack.push({ array, key: undefined, index: 0 });
          this.expect = array ? Expect.ValueOrEnd : Expect.KeyOrEnd;
          i++;
          continue;
        }
        case 0x7d: // }
        case 0x5d: {
          // ]
          const top = this.stack[this.stack.length - 1];
          const array = c === 0x5d;
          if (!top || top.array !== array) this.fail(`unexpected ${String.fromCharCode(c)}`, i);
          if (array ? this.expect !== Expect.ValueOrEnd && this.expect !== Expect.CommaOrEnd : this.expect !== Expect.KeyOrEnd && this.expect !== Expect.CommaOrEnd) {
            this.fail(`unexpected ${String.fromCharCode(c)}`, i);
          }
          this.closeHashFrame();
          if (this.volatileDepth === this.stack.length) this.volatileDepth = 0;
          const closesCapture = this.valueCaptureDepth === this.stack.length;
          this.stack.pop();
          if (this.stack.length === 0) this.documentEnd = this.offset + i + 1;
          if (closesCapture) {
            this.valueCaptureDepth = 0;
            this.appendCapture(chunk, capStart, i + 1);
            outStart = this.endCapture(i + 1);
          }
          this.afterValue();
          i++;
          continue;
        }
        case 0x3a: {
          // :
          if (this.expect !== Expect.Colon) this.fail('unexpected ":"', i);
          const top = this.stack[this.stack.length - 1]!;
          top.key = this.pendingKey;
          this.expect = Expect.Value;
          i++;
          continue;
        }
        case 0x2c: {
          // ,
          if (this.expect !== Expect.CommaOrEnd) this.fail('unexpected ","', i);
          const top = this.stack[this.stack.length - 1]!;
          if (top.array) {
            top.index++;
            this.expect = Expect.Value;
          } else {
            this.expect = Expect.Key;
          }
          i++;
          continue;
        }
        default: {
          if (!isLiteralByte(c)) this.fail(`unexpected byte 0x${c.toString(16)}`, i);
          const started = this.startScalar(i, chunk, outStart);
          if (started.flushedTo !== undefined) {
            outStart = started.flushedTo;
            capStart = i;
          }
          this.inLiteral = true;
          this.startToken(TAG_SCALAR, i);
          this.literalStart(c, chunk, i);
          i++;
          continue;
        }
      }
    }
    // End of chunk: keep partial tokens for the next one.
    if (this.inString && this.tokenIsKey) this.appendKey(chunk, keyStart, n);
    if (this.capturing) {
      this.appendCapture(chunk, capStart, n);
    } else {
      this.out(chunk.subarray(outStart, n));
    }
    if (this.inString || this.inLiteral) {
      this.feedToken(chunk, n);
    }
    this.tokenStart = 0;
  }

  /** The first byte of a literal. */
  private literalStart(c: number, chunk: Buffer, at: number): void {
    this.literalWord = undefined;
    if (c === 0x2d) this.literalState = Lit.Minus;
    else if (c === 0x30) this.literalState = Lit.Zero;
    else if (c > 0x30 && c <= 0x39) this.literalState = Lit.Int;
    else if (WORDS[c]) {
      this.literalState = Lit.Word;
      this.literalWord = WORDS[c];
      this.literalWordAt = 1;
    } else this.badLiteral(chunk, at);
  }

  /** One more byte of the current literal. */
  private literalByte(c: number, chunk: Buffer, at: number): void {
    switch (this.literalState) {
      case Lit.Minus:
        if (c === 0x30) this.literalState = Lit.Zero;
        else if (c > 0x30 && c <= 0x39) this.literalState = Lit.Int;
        else this.badLiteral(chunk, at);
        return;
      case Lit.Zero:
      case Lit.Int:
      case Lit.Frac:
        if (isDigit(c) && this.literalState !== Lit.Zero) return;
        if (c === 0x2e && this.literalState !== Lit.Frac) this.literalState = Lit.Dot;
        else if (c === 0x65 || c === 0x45) this.literalState = Lit.Exp;
        else this.badLiteral(chunk, at);
        return;
      case Lit.Dot:
        if (isDigit(c)) this.literalState = Lit.Frac;
        else this.badLiteral(chunk, at);
        return;
      case Lit.Exp:
        if (c === 0x2b || c === 0x2d) this.literalState = Lit.ExpSign;
        else if (isDigit(c)) this.literalState = Lit.ExpDigits;
        else this.badLiteral(chunk, at);
        return;
      case Lit.ExpSign:
      case Lit.ExpDigits:
        if (isDigit(c)) this.literalState = Lit.ExpDigits;
        else this.badLiteral(chunk, at);
        return;
      case Lit.Word: {
        const word = this.literalWord!;
        if (this.literalWordAt < word.length && word[this.literalWordAt] === c) this.literalWordAt++;
        else this.badLiteral(chunk, at);
        return;
      }
    }
  }

  /** The literal ends before `at` (a byte that cannot be part of it): is it whole? */
  private literalEnd(chunk: Buffer, at: number): void {
    const state = this.literalState;
    if (state === Lit.Zero || state === Lit.Int || state === Lit.Frac || state === Lit.ExpDigits) return;
    if (state === Lit.Word && this.literalWordAt === this.literalWord!.length) return;
    this.badLiteral(chunk, at);
  }

  private badLiteral(chunk: Buffer, at: number): never {
    const from = Math.max(0, this.tokenStart <= at ? this.tokenStart : 0, at - 20);
    let to = at + 1;
    while (to < chunk.length && to - from < 24 && isLiteralByte(chunk[to]!)) to++;
    const text = chunk.subarray(from, Math.min(to, chunk.length)).toString('latin1');
    this.fail(`invalid JSON literal ${JSON.stringify(text)} (not a number, true, false or null)`, at);
  }

  private startValue(at: number): void {
    if (this.expect !== Expect.Value && this.expect !== Expect.ValueOrEnd) this.fail('unexpected value', at);
    if (this.hooks.onValueStart && this.stack.length <= 2) {
      const path = this.currentPath();
      if (path) this.hooks.onValueStart(path);
    }
  }

  /** A string or literal value starts at `at`. Returns where output was flushed to if it is captured. */
  private startScalar(at: number, chunk: Buffer, outStart: number): { flushedTo?: number } {
    this.startValue(at);
    if (this.stack.length === 0) this.fail('the document must be a JSON object', at);
    const path = this.currentPath();
    this.scalarVolatile = false;
    if (path && this.volatileDepth === 0 && this.hooks.volatile?.(path)) {
      if (this.hashing) this.addDigest(NULL_DIGEST);
      this.scalarVolatile = true;
    }
    if (path && !this.capturing) {
      const whole = this.hooks.captureValue?.(path) === true;
      const wanted = this.hooks.wants?.(path) === true;
      if (whole || wanted) {
        this.out(chunk.subarray(outStart, at));
        this.beginCapture(path, whole, wanted);
        return { flushedTo: at };
      }
    }
    return {};
  }

  private beginCapture(path: JsonPath, whole: boolean, wanted = false): void {
    this.capturing = true;
    this.capturingValue = whole;
    this.captureWanted = wanted;
    this.captureParts = [];
    this.captureBytes = 0;
    this.capturePath = path;
  }

  private endScalar(digest: Buffer | undefined): void {
    if (digest) this.addDigest(digest);
    this.scalarVolatile = false;
    this.afterValue();
  }

  private afterValue(): void {
    this.expect = this.stack.length === 0 ? Expect.Done : Expect.CommaOrEnd;
  }

  private appendCapture(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.captureBytes += end - start;
    const limit = this.capturingValue ? MAX_VALUE_CAPTURE_BYTES : MAX_CAPTURE_BYTES;
    if (this.captureBytes > limit) {
      throw new JsonScanError(`value at ${this.capturePath.join('.')} exceeds ${limit} bytes`);
    }
    this.captureParts.push(Buffer.from(chunk.subarray(start, end)));
  }

  /** The captured scalar ended; writes it (or its replacement). Returns the new output start. */
  private endCapture(end: number): number {
    const raw = Buffer.concat(this.captureParts);
    this.capturing = false;
    this.captureParts = [];
    let value: unknown;
    try {
      value = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new JsonScanError(`invalid JSON value at ${this.capturePath.join('.')}`);
    }
    const whole = this.capturingValue;
    this.capturingValue = false;
    // A scalar both captured whole and wanted goes to both sets of hooks; replaceValue speaks first.
    const wanted = !whole || this.captureWanted;
    this.captureWanted = false;
    if (wanted) this.hooks.onScalar?.(this.capturePath, value);
    let replacement = whole ? this.hooks.replaceValue?.(this.capturePath, value) : undefined;
    if (replacement === undefined && wanted) replacement = this.hooks.replace?.(this.capturePath, value);
    this.out(replacement === undefined ? raw : Buffer.from(replacement, 'utf8'));
    return end;
  }

  private appendKey(chunk: Buffer, start: number, end: number): void {
    if (end <= start) return;
    this.keyBytes += end - start;
    if (this.keyBytes <= MAX_KEY_BYTES) this.keyParts.push(Buffer.from(chunk.subarray(start, end)));
  }

  private endKey(digest: Buffer | undefined): void {
    this.tokenIsKey = false;
    const frame = this.hashFrames[this.hashFrames.length - 1];
    if (frame && digest) frame.keyDigest = digest;
    if (this.keyBytes > MAX_KEY_BYTES) {
      this.pendingKey = undefined;
    } else {
      try {
        this.pendingKey = JSON.parse(Buffer.concat(this.keyParts).toString('utf8')) as string;
      } catch {
        throw new JsonScanError(`invalid object key after ${this.offset} bytes`);
      }
    }
    this.keyParts = [];
    this.expect = Expect.Colon;
  }
}

export function pathIs(path: JsonPath, ...expected: PathSegment[]): boolean {
  if (path.length !== expected.length) return false;
  for (let i = 0; i < expected.length; i++) if (path[i] !== expected[i]) return false;
  return true;
}

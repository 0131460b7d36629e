import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { SessmigError } from '../util/errors.js';
import { redact } from '../util/redact.js';

/**
 * Byte transfers through presigned URLs with Node's fetch: the one path for blobs on S3, used
 * alike by hosts with credentials and (through tickets) hosts without. fetch does not retry, so
 * this does: network errors and 5xx are retried with exponential backoff; 4xx are not.
 */
export interface TransferOptions {
  /** What the URL is for, for messages ("blob 3f2a…", "ticket"). */
  what: string;
  attempts?: number;
  /** Called before each retry after a 403 "Request has expired": returns a fresh URL (credentialed hosts re-mint). */
  refresh?: () => Promise<string>;
}

export const MAX_ERROR_PREVIEW = 4096;
const DEFAULT_ATTEMPTS = 4;

export interface Padding {
  /** The object's length: the file, then `byte` repeated up to it (upload slots sign one exact size). */
  to: number;
  byte: number;
}

export async function putFileToUrl(url: string, file: string, size: number, options: TransferOptions & { pad?: Padding }): Promise<void> {
  const length = options.pad ? options.pad.to : size;
  if (length < size) throw new Error('internal: padding shorter than the file');
  await withRetries(url, options, async (current) => {
    const source = options.pad ? Readable.from(padded(file, length - size, options.pad.byte)) : createReadStream(file);
    const body = Readable.toWeb(source) as ReadableStream<Uint8Array>;
    const response = await fetch(current, {
      method: 'PUT',
      body,
      headers: { 'content-length': String(length) },
      duplex: 'half',
    } as RequestInit);
    if (!response.ok) throw await httpError(response, options.what, 'upload');
    await response.body?.cancel();
  });
}

async function* padded(file: string, extra: number, byte: number): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(file)) yield chunk as Buffer;
  const block = Buffer.alloc(Math.min(extra, 1024 * 1024), byte);
  for (let left = extra; left > 0; left -= block.length) yield left >= block.length ? block : block.subarray(0, left);
}

export async function putBytesToUrl(url: string, body: Buffer, options: TransferOptions): Promise<void> {
  await withRetries(url, options, async (current) => {
    const response = await fetch(current, {
      method: 'PUT',
      body: new Uint8Array(body),
      headers: { 'content-length': String(body.length) },
    });
    if (!response.ok) throw await httpError(response, options.what, 'upload');
    await response.body?.cancel();
  });
}

export async function getStreamFromUrl(url: string, options: TransferOptions): Promise<Readable> {
  return withRetries(url, options, async (current) => {
    const response = await fetch(current);
    if (!response.ok || !response.body) throw await httpError(response, options.what, 'download');
    return Readable.fromWeb(response.body as import('node:stream/web').ReadableStream<Uint8Array>);
  });
}

export async function getBytesFromUrl(url: string, maxBytes: number, options: TransferOptions): Promise<Buffer> {
  const stream = await getStreamFromUrl(url, options);
  return readCapped(stream, maxBytes, options.what);
}

export async function readCapped(stream: Readable, maxBytes: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > maxBytes) {
      stream.destroy();
      throw new SessmigError('document-too-large', `${what} exceeds ${maxBytes} bytes`, {
        hint: 'the object is damaged or was not written by sessmig',
      });
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

async function withRetries<T>(url: string, options: TransferOptions, attempt: (url: string) => Promise<T>): Promise<T> {
  const attempts = options.attempts ?? DEFAULT_ATTEMPTS;
  let current = url;
  for (let i = 1; ; i++) {
    try {
      return await attempt(current);
    } catch (error) {
      const retryable = isRetryable(error);
      const expired = error instanceof SessmigError && error.code === 'url-expired' && options.refresh;
      if (i >= attempts || (!retryable && !expired)) throw normalize(error, options.what);
      if (expired && options.refresh) current = await options.refresh();
      await sleep(Math.min(2000, 100 * 2 ** (i - 1)) * (0.5 + Math.random()));
    }
  }
}

function isRetryable(error: unknown): boolean {
  if (error instanceof SessmigError) return error.data?.status !== undefined && Number(error.data.status) >= 500;
  return true; // network errors: fetch throws TypeError('fetch failed')
}

function normalize(error: unknown, what: string): SessmigError {
  if (error instanceof SessmigError) return error;
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const detail = cause?.code ?? cause?.message ?? (error as Error).message;
  return new SessmigError('remote-unreachable', `${what}: cannot reach the S3 endpoint (${redact(String(detail))})`, {
    hint: 'check the network and the endpoint (AWS_ENDPOINT_URL_S3), then re-run; nothing was committed',
    cause: error,
  });
}

/** Turns an S3 error response into a SessmigError that tells the causes of a 403 apart. */
export async function httpError(response: Response, what: string, action: string): Promise<SessmigError> {
  const { text, cut } = await readPreview(response);
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(text)?.[1];
  const message = /<Message>([^<]{1,500})<\/Message>/.exec(text)?.[1];
  const preview = redact(text).slice(0, MAX_ERROR_PREVIEW);
  const data = { status: response.status, s3Code: code, preview, ...(cut ? { previewCut: true } : {}) };
  const base = `${what}: ${action} failed with HTTP ${response.status}${code ? ` ${code}` : ''}${cut ? ` (its error body exceeds ${MAX_ERROR_PREVIEW} bytes; only that much was read)` : ''}`;
  if (response.status === 403 && (code === 'AccessDenied' && /expired/i.test(message ?? '') || /expired/i.test(code ?? ''))) {
    return new SessmigError('url-expired', `${base}: the presigned URL has expired`, {
      hint: 'ask the host with credentials for a new ticket (sessmig share) and re-run',
      data,
    });
  }
  if (response.status === 403 && code === 'SignatureDoesNotMatch') {
    return new SessmigError('url-tampered', `${base}: the URL's signature does not match (tampered or truncated URL)`, {
      hint: 'copy the whole URL again, or mint a new one with sessmig share',
      data,
    });
  }
  if (response.status === 403) {
    return new SessmigError('access-denied', `${base}: access denied${message ? ` (${message})` : ''}`, {
      hint: 'the object may be missing (S3 answers 403 for a missing key to a URL without list permission), or the credentials lack permission',
      data,
    });
  }
  if (response.status === 404) {
    return new SessmigError('not-found', `${base}: the object is missing`, {
      hint: 'the remote is incomplete; run `sessmig check`',
      data,
    });
  }
  if (response.status === 400 && code === 'EntityTooLarge') {
    return new SessmigError('too-large', `${base}: the object is larger than allowed`, { data });
  }
  return new SessmigError('http-error', `${base}${message ? `: ${redact(message)}` : ''}`, {
    hint: response.status >= 500 ? 'the S3 service failed; re-run later' : 'see the error body preview in --json output',
    data,
  });
}

async function readPreview(response: Response): Promise<{ text: string; cut: boolean }> {
  if (!response.body) return { text: '', cut: false };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let done = false;
  try {
    while (total <= MAX_ERROR_PREVIEW) {
      const next = await reader.read();
      if (next.done) {
        done = true;
        break;
      }
      chunks.push(next.value);
      total += next.value.length;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  // Never read an error body whole: past the cap it is cut, and the message says so.
  return { text: Buffer.concat(chunks).subarray(0, MAX_ERROR_PREVIEW).toString('utf8'), cut: !done || total > MAX_ERROR_PREVIEW };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

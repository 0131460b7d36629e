import type { z } from 'zod';
import { remoteDataError } from '../util/errors.js';
import { FORMAT_VERSION, Versioned } from './schema.js';

/**
 * Parses one of the format's JSON documents read from a remote: refuses it when it is over its
 * size cap, not JSON, from a future format version, or off its schema — each with its own message.
 */
export function parseDocument<S extends z.ZodType>(
  bytes: Buffer,
  schema: S,
  what: string,
  maxBytes: number,
  /** The newest `formatVersion` of this kind of document that this sessmig reads. */
  newest: number = FORMAT_VERSION,
): z.infer<S> {
  if (bytes.length > maxBytes) {
    throw remoteDataError(
      'document-too-large',
      `${what} is ${bytes.length} bytes, which exceeds ${maxBytes} bytes`,
      'the remote object is damaged or was not written by sessmig; run `sessmig check`',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw remoteDataError(
      'document-malformed',
      `${what} is not valid JSON (${(error as Error).message})`,
      'the remote object is damaged (truncated?); push again or pull another checkpoint with --checkpoint',
    );
  }
  const versioned = Versioned.safeParse(value);
  if (versioned.success && versioned.data.formatVersion > newest) {
    throw remoteDataError(
      'format-too-new',
      `${what} has format version ${versioned.data.formatVersion}, newer than this sessmig reads (${newest}): upgrade sessmig`,
      'upgrade sessmig on this host (npm i -g sessmig@latest)',
    );
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue && issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw remoteDataError(
      'document-invalid',
      `${what} is malformed at ${path}: ${issue?.message ?? 'invalid'}`,
      'the remote object is damaged or was written by an incompatible tool; run `sessmig check`',
    );
  }
  return parsed.data;
}

export function serializeDocument(value: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(value, null, 2)}\n`, 'utf8');
}

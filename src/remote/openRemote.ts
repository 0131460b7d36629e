import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { usageError } from '../util/errors.js';
import { LocalRemote } from './localRemote.js';
import type { Remote } from './remote.js';
import { S3Remote } from './s3Remote.js';

export interface RemoteSettings {
  /** --remote, else SESSMIG_REMOTE, else the embedded default folder. */
  url: string | undefined;
  defaultFolder: string;
  s3PathStyle: boolean;
  env: NodeJS.ProcessEnv;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Parses a remote URL (file:///abs/path or s3://bucket/prefix) and opens it. */
export function openRemote(settings: RemoteSettings): Remote {
  const raw = settings.url ?? settings.env.SESSMIG_REMOTE ?? pathToFileURL(settings.defaultFolder).href;
  const hint = 'use file:///absolute/path or s3://bucket/prefix';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw usageError('bad-remote', `remote ${JSON.stringify(raw.slice(0, 200))} is not a URL`, hint);
  }
  if (url.protocol === 'file:') {
    if (url.host && url.host !== 'localhost') {
      throw usageError('bad-remote', `remote ${raw} names host ${url.host}; file:// remotes are local folders`, hint);
    }
    if (url.search || url.hash) throw usageError('bad-remote', `remote ${raw} has a query or fragment`, hint);
    const folder = path.resolve(fileURLToPath(url));
    return new LocalRemote(folder, url.href);
  }
  if (url.protocol === 's3:') {
    const bucket = url.hostname;
    if (!BUCKET.test(bucket)) {
      throw usageError('bad-remote', `remote ${raw}: ${JSON.stringify(bucket)} is not a valid S3 bucket name`, hint);
    }
    if (url.username || url.password || url.port || url.search || url.hash) {
      throw usageError(
        'bad-remote',
        `remote ${redactUserinfo(url)} must not carry credentials, a port, a query or a fragment`,
        'give credentials through AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, and the endpoint through AWS_ENDPOINT_URL_S3',
      );
    }
    const parts = decodeURIComponent(url.pathname).split('/').filter(Boolean);
    if (parts.some((part) => part === '.' || part === '..')) {
      throw usageError('bad-remote', `remote ${raw}: the prefix must not contain "." or ".." segments`, hint);
    }
    const prefix = parts.length > 0 ? `${parts.join('/')}/` : '';
    const pathStyle = settings.s3PathStyle || ['1', 'true', 'yes'].includes((settings.env.SESSMIG_S3_FORCE_PATH_STYLE ?? '').toLowerCase());
    return new S3Remote({ bucket, prefix }, `s3://${bucket}/${prefix}`, { forcePathStyle: pathStyle, env: settings.env });
  }
  throw usageError('bad-remote', `remote ${JSON.stringify(raw.slice(0, 200))} has an unsupported scheme ${url.protocol}`, hint);
}

function redactUserinfo(url: URL): string {
  return `s3://${url.hostname}${url.pathname}`;
}

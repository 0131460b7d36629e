import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import type { DeserializeMiddleware } from '@smithy/types';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable } from 'node:stream';
import { SessmigError } from '../util/errors.js';
import { redact } from '../util/redact.js';
import { cleartextOrigin } from './cleartext.js';
import { getStreamFromUrl, MAX_ERROR_PREVIEW, putFileToUrl, readCapped } from './http.js';
import type { ListedObject, Presigner, PutConditions, Remote, StoredObject } from './remote.js';
import { MAX_SINGLE_PUT_BYTES } from './remote.js';
import { notFound, objectTooLarge, preconditionFailed } from './remoteErrors.js';

export interface S3Location {
  bucket: string;
  /** Key prefix inside the bucket, '' or ending in '/'. */
  prefix: string;
}

export interface S3Options {
  forcePathStyle: boolean;
  env: NodeJS.ProcessEnv;
  /** Keys per list request (S3's MaxKeys, 1-1000); unset: the store's default (1000 on AWS). Tests force small pages with it. */
  listPageSize?: number;
}

/** Presigned URLs minted for our own transfers live this long; re-minted if they expire. */
const TRANSFER_URL_SECONDS = 3600;

/**
 * S3 and S3-compatible stores (AWS, R2, MinIO, Ceph) through the AWS SDK v3 and the standard
 * credential chain. Small documents go through SDK calls (conditional writes on the pointer);
 * blob bytes go through presigned URLs, the same path hosts without credentials use.
 */
export class S3Remote implements Remote, Presigner {
  readonly conditionalWrites = true;
  private readonly client: S3Client;
  /** The endpoint the environment names, and the origin of the last request sent (the SDK may take an endpoint from its config files too). */
  private readonly endpoint: string | undefined;
  private sentTo: string | undefined;
  private readonly listPageSize: number | undefined;

  constructor(
    readonly location: S3Location,
    readonly display: string,
    options: S3Options,
  ) {
    const endpoint = options.env.AWS_ENDPOINT_URL_S3 || options.env.AWS_ENDPOINT_URL || undefined;
    this.endpoint = endpoint;
    this.listPageSize = options.listPageSize;
    const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = options.env;
    this.client = new S3Client({
      // Static keys from the given environment; otherwise the SDK's standard chain (profiles, SSO, IMDS).
      ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } } : {}),
      region: options.env.AWS_REGION || options.env.AWS_DEFAULT_REGION || 'us-east-1',
      ...(endpoint ? { endpoint } : {}),
      forcePathStyle: options.forcePathStyle,
      // The SDK's newer default (WHEN_SUPPORTED) adds flexible checksums that many S3-compatible
      // stores reject (streamed PUTs fail with 411 on Ceph): only send them when an API needs them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 4,
    });
    this.client.middlewareStack.add(capErrorBodies(display), { step: 'deserialize', priority: 'low', name: 'sessmigCapErrorBodies' });
    this.client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { protocol?: string; hostname?: string; port?: number };
        if (request?.hostname) this.sentTo = `${request.protocol ?? 'https:'}//${request.hostname.includes(':') && !request.hostname.startsWith('[') ? `[${request.hostname}]` : request.hostname}${request.port ? `:${request.port}` : ''}`;
        return next(args);
      },
      { step: 'finalizeRequest', name: 'sessmigSeeEndpoint' },
    );
  }

  cleartextEndpoint(): string | undefined {
    return (this.endpoint && cleartextOrigin(this.endpoint)) || (this.sentTo && cleartextOrigin(this.sentTo)) || undefined;
  }

  private key(key: string): string {
    return `${this.location.prefix}${key}`;
  }

  async get(key: string, maxBytes: number): Promise<StoredObject | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
      if (out.ContentLength !== undefined && out.ContentLength > maxBytes) {
        (out.Body as Readable | undefined)?.destroy?.();
        throw objectTooLarge(key, out.ContentLength, maxBytes);
      }
      const body = await readCapped(out.Body as Readable, maxBytes, `remote object ${key}`);
      return { body, etag: unquote(out.ETag ?? '') };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw this.wrap(error, `read ${key}`);
    }
  }

  async put(key: string, body: Buffer, conditions: PutConditions = {}): Promise<{ etag: string }> {
    try {
      const out = await this.client.send(
        new PutObjectCommand({
          Bucket: this.location.bucket,
          Key: this.key(key),
          Body: body,
          ContentLength: body.length,
          ContentType: 'application/json',
          // Ceph RGW only compares unquoted ETags; AWS accepts both forms.
          ...(conditions.ifMatch !== undefined ? { IfMatch: unquote(conditions.ifMatch) } : {}),
          ...(conditions.ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
      );
      return { etag: unquote(out.ETag ?? '') };
    } catch (error) {
      const status = statusOf(error);
      if (status === 412 || status === 409 || nameOf(error) === 'PreconditionFailed') throw preconditionFailed(key);
      // If-Match on a missing key: 412 on Ceph, 404 on AWS.
      if (conditions.ifMatch !== undefined && isNotFound(error)) throw preconditionFailed(key);
      throw this.wrap(error, `write ${key}`);
    }
  }

  async head(key: string): Promise<{ size: number; etag: string } | undefined> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
      return { size: out.ContentLength ?? 0, etag: unquote(out.ETag ?? '') };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw this.wrap(error, `stat ${key}`);
    }
  }

  async putFile(key: string, file: string, size: number): Promise<void> {
    if (size > MAX_SINGLE_PUT_BYTES) {
      throw new SessmigError(
        'blob-too-large',
        `${key} is ${size} bytes, over S3's single-PUT limit of ${MAX_SINGLE_PUT_BYTES} bytes`,
        { hint: 'push this session to a file:// remote, or split the work into smaller sessions' },
      );
    }
    const mint = () => this.presignPut(key, size);
    await putFileToUrl(await mint(), file, size, { what: `upload of ${key}`, refresh: mint });
  }

  async getStream(key: string): Promise<Readable> {
    const mint = () => this.presignGet(key);
    return getStreamFromUrl(await mint(), { what: `download of ${key}`, refresh: mint });
  }

  /** This store signs URLs (tickets). */
  get presigner(): Presigner {
    return this;
  }

  async presignGet(key: string, expiresIn = TRANSFER_URL_SECONDS): Promise<string> {
    return this.presign(new GetObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }), expiresIn);
  }

  async presignPut(key: string, size: number, expiresIn = TRANSFER_URL_SECONDS): Promise<string> {
    const command = new PutObjectCommand({ Bucket: this.location.bucket, Key: this.key(key), ContentLength: size });
    // Signing content-length makes the URL refuse a body of any other size.
    return this.presign(command, expiresIn, new Set(['content-length']));
  }

  private async presign(
    command: GetObjectCommand | PutObjectCommand,
    expiresIn: number,
    signableHeaders?: Set<string>,
  ): Promise<string> {
    try {
      return await getSignedUrl(this.client, command, { expiresIn, ...(signableHeaders ? { signableHeaders } : {}) });
    } catch (error) {
      throw this.wrap(error, 'sign a URL');
    }
  }

  async *list(prefix: string): AsyncIterable<ListedObject> {
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: this.key(prefix),
            ContinuationToken: token,
            ...(this.listPageSize !== undefined ? { MaxKeys: this.listPageSize } : {}),
          }),
        );
      } catch (error) {
        throw this.wrap(error, `list ${prefix}`);
      }
      for (const item of out.Contents ?? []) {
        if (!item.Key) continue;
        yield {
          key: item.Key.slice(this.location.prefix.length),
          size: item.Size ?? 0,
          lastModified: item.LastModified ?? new Date(0),
        };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token);
  }

  async touch(key: string): Promise<void> {
    try {
      // A copy onto itself with new metadata is S3's way to refresh LastModified.
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.location.bucket,
          Key: this.key(key),
          CopySource: `${this.location.bucket}/${this.key(key).split('/').map(encodeURIComponent).join('/')}`,
          MetadataDirective: 'REPLACE',
          Metadata: { 'sessmig-touched': new Date().toISOString() },
        }),
      );
    } catch (error) {
      if (isNotFound(error)) throw notFound(key);
      throw this.wrap(error, `touch ${key}`);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: this.key(key) }));
    } catch (error) {
      throw this.wrap(error, `delete ${key}`);
    }
  }

  private wrap(error: unknown, action: string): SessmigError {
    if (error instanceof SessmigError) return error;
    const name = nameOf(error);
    const status = statusOf(error);
    const where = `${this.display}: cannot ${action}`;
    const detail = redact((error as Error)?.message ?? String(error));
    if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(detail)) {
      return new SessmigError('no-credentials', `${where}: no AWS credentials found`, {
        hint: 'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or pull through a ticket (sessmig pull --from-url)',
        cause: error,
      });
    }
    if (name === 'NoSuchBucket') {
      return new SessmigError('bucket-missing', `${where}: bucket ${this.location.bucket} does not exist`, {
        hint: 'create the bucket, or fix the bucket name in --remote / SESSMIG_REMOTE',
        cause: error,
      });
    }
    if (status === 403 || name === 'AccessDenied' || name === 'InvalidAccessKeyId' || name === 'SignatureDoesNotMatch') {
      return new SessmigError('access-denied', `${where}: access denied (${name ?? status})`, {
        hint: 'check the credentials (AWS_PROFILE / AWS_ACCESS_KEY_ID) and that they may read and write this bucket and prefix',
        cause: error,
      });
    }
    if (status === undefined) {
      const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code;
      return new SessmigError('remote-unreachable', `${where}: ${code ?? detail}`, {
        hint: 'check the network and the endpoint (AWS_ENDPOINT_URL_S3, AWS_REGION), then re-run; nothing was committed',
        cause: error,
      });
    }
    return new SessmigError('remote-error', `${where}: HTTP ${status} ${name ?? ''} ${detail}`.trim(), {
      hint: status >= 500 ? 'the S3 service failed; re-run later' : 'check the remote URL and permissions',
      cause: error,
    });
  }
}

function unquote(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

function statusOf(error: unknown): number | undefined {
  if (error instanceof S3ServiceException) return error.$metadata?.httpStatusCode;
  return (error as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function nameOf(error: unknown): string | undefined {
  return (error as { name?: string })?.name;
}

function isNotFound(error: unknown): boolean {
  const name = nameOf(error);
  return name === 'NoSuchKey' || name === 'NotFound' || (statusOf(error) === 404 && name !== 'NoSuchBucket');
}

/**
 * The SDK reads an error response's body whole to parse it: a store (or a proxy) that answers with
 * a huge body would be read into memory. This runs between the HTTP response and the SDK's
 * parser: an error body over MAX_ERROR_PREVIEW bytes is refused ("exceeds N bytes") after reading
 * only that much; a smaller one is handed on unchanged.
 */
function capErrorBodies(display: string): DeserializeMiddleware<ServiceInputTypes, ServiceOutputTypes> {
  return (next) =>
    async (args) => {
      const result = await next(args);
      const response = result.response as { statusCode?: number; headers?: Record<string, string>; body?: unknown };
      if (!response || (response.statusCode ?? 200) < 300 || !(response.body instanceof Readable)) return result;
      const chunks: Buffer[] = [];
      let total = 0;
      for await (const chunk of response.body) {
        chunks.push(chunk as Buffer);
        total += (chunk as Buffer).length;
        if (total > MAX_ERROR_PREVIEW) {
          response.body.destroy();
          const preview = Buffer.concat(chunks).subarray(0, MAX_ERROR_PREVIEW).toString('utf8');
          const code = /<Code>([^<]{1,100})<\/Code>/.exec(preview)?.[1];
          // Exit 2 either way: the credentials (a 403) or the endpoint (not an S3 service) are the user's to fix.
          throw new SessmigError(
            'error-body-too-large',
            `${display}: the store answered HTTP ${response.statusCode}${code ? ` ${code}` : ''} with an error body that exceeds ${MAX_ERROR_PREVIEW} bytes; it was not read further`,
            {
              hint: response.statusCode === 403 ? 'check the credentials and their permissions on this bucket and prefix' : 'the endpoint may not be an S3 service (check AWS_ENDPOINT_URL_S3), or a proxy answers in its place',
              data: { status: response.statusCode, s3Code: code, preview: redact(preview) },
            },
          );
        }
      }
      response.body = Readable.from([Buffer.concat(chunks)]);
      return result;
    };
}

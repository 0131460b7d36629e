import { SessmigError } from '../util/errors.js';

export function notFound(key: string): SessmigError {
  return new SessmigError('not-found', `remote object ${key} is missing`, {
    hint: 'the remote is incomplete; run `sessmig check`, or push again from the host that has the sessions',
  });
}

export function preconditionFailed(key: string): SessmigError {
  return new SessmigError('precondition-failed', `${key} was changed by someone else while this command ran`, {
    hint: 're-run the command; it will read the new state first',
  });
}

export function objectTooLarge(key: string, size: number, max: number): SessmigError {
  return new SessmigError('document-too-large', `remote object ${key} is ${size} bytes, which exceeds ${max} bytes`, {
    hint: 'the remote object is damaged or was not written by sessmig; run `sessmig check`',
    remoteData: true,
  });
}

/**
 * Removes secrets from text before it is printed: presigned URL signatures and credentials,
 * security tokens, URL fragments (which carry ticket keys) and AWS secret keys in env-like text.
 */
const QUERY_SECRETS = /([?&](?:X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId|x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&#\s"'<>]*/g;
const FRAGMENT = /(https?:\/\/[^\s"'<>#]*)#[^\s"'<>]*/g;
const AGE_IDENTITY = /AGE-SECRET-KEY-(?:PQ-)?1[0-9A-Z]+/g;
const SECRET_ASSIGN = /((?:AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|SESSMIG_KEY)\s*[=:]\s*)\S+/g;

export function redact(text: string): string {
  return text
    .replace(QUERY_SECRETS, '$1REDACTED')
    .replace(FRAGMENT, '$1#REDACTED')
    .replace(SECRET_ASSIGN, '$1REDACTED')
    .replace(AGE_IDENTITY, 'AGE-SECRET-KEY-REDACTED');
}

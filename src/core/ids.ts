/** Longest job id accepted anywhere (prefix + uuid is far shorter). */
export const MAX_JOB_ID_LENGTH = 200;

const ID_CHARS = /^[A-Za-z0-9._:-]+$/;

/**
 * Whether `id` can be a job id: 1-200 letters, digits, `.`, `_`, `:` or `-`. Anything else (spaces, `*`,
 * `{`, `}`, control characters) never reaches a store or a log.
 */
export function isValidJobId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_JOB_ID_LENGTH && ID_CHARS.test(id);
}

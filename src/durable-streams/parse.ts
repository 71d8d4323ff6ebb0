/**
 * What a Durable Streams request asks, read off its headers and query and checked (Protocol 5): a
 * malformed one is `400` before anything is looked up. Imports no `node:` module.
 */
import type { ProducerTuple } from '../core/streams.js';
import type { HttpRequest } from '../protocol/protocol.js';
import { requestQuery } from '../protocol/route.js';
import { HttpError } from '../protocol/status.js';
import { parseOffset } from './wire.js';

const TTL = /^(0|[1-9]\d*)$/;
const WHOLE = /^\d+$/;
const OFFSET_SYNTAX = /^(-1|now|\d+_\d+)$/;
const CONTENT_TYPE = /^[\w.+-]+\/[\w.+-]+\s*(;.*)?$/;

export function bad(message: string): HttpError {
  return new HttpError(400, 'INVALID_REQUEST', `job-registry: ${message}`);
}

/** A create (`PUT`), as asked. */
export interface CreateAsk {
  ttlSeconds: number | undefined;
  expiresAt: string | undefined;
  forkedFrom: string | undefined;
  forkOffset: string | undefined;
  subOffset: number;
  /** The Content-Type given and well formed, if any. */
  given: string | undefined;
  contentType: string;
  closed: boolean;
}

export function parseCreate<Raw>(req: HttpRequest<Raw>, now: number): CreateAsk {
  const ttl = req.header('stream-ttl');
  const expiresAt = req.header('stream-expires-at');
  if (ttl !== undefined && expiresAt !== undefined)
    throw bad('give Stream-TTL or Stream-Expires-At, not both');
  if (ttl !== undefined && !(TTL.test(ttl) && Number.isSafeInteger(Number(ttl))))
    throw bad('Stream-TTL must be a whole number of seconds');
  if (expiresAt !== undefined && !Number.isFinite(Date.parse(expiresAt)))
    throw bad('Stream-Expires-At must be an RFC 3339 timestamp');
  if (expiresAt !== undefined && Date.parse(expiresAt) <= now) throw bad('Stream-Expires-At is in the past');
  const forkedFrom = req.header('stream-forked-from');
  const forkOffset = req.header('stream-fork-offset');
  const subText = req.header('stream-fork-sub-offset');
  if (forkOffset !== undefined && (forkedFrom === undefined || parseOffset(forkOffset) === undefined))
    throw bad('Stream-Fork-Offset must be an offset of the source, with Stream-Forked-From');
  if (subText !== undefined && (forkedFrom === undefined || !TTL.test(subText)))
    throw bad('Stream-Fork-Sub-Offset must be a whole number, with Stream-Forked-From');
  const subOffset = subText === undefined ? 0 : Number(subText);
  if (subOffset > 0 && forkOffset === undefined) throw bad('Stream-Fork-Sub-Offset needs Stream-Fork-Offset');
  const header = req.header('content-type');
  const valid = header !== undefined && CONTENT_TYPE.test(header.trim());
  if (header !== undefined && !valid) throw bad('malformed Content-Type; give a type/subtype');
  const given = valid ? header.trim() : undefined;
  return {
    ttlSeconds: ttl === undefined ? undefined : Number(ttl),
    expiresAt,
    forkedFrom,
    forkOffset,
    subOffset,
    given,
    contentType: given ?? 'application/octet-stream',
    closed: req.header('stream-closed')?.toLowerCase() === 'true',
  };
}

/** An append (`POST`), as asked. */
export interface AppendAsk {
  producer: ProducerTuple | undefined;
  close: boolean;
  contentType: string | undefined;
  writerSeq: string | undefined;
}

export function parseAppend<Raw>(req: HttpRequest<Raw>): AppendAsk {
  const producerId = req.header('producer-id');
  const epochText = req.header('producer-epoch');
  const seqText = req.header('producer-seq');
  const some = producerId !== undefined || epochText !== undefined || seqText !== undefined;
  const all = producerId !== undefined && epochText !== undefined && seqText !== undefined;
  if (some && !all) throw bad('send Producer-Id, Producer-Epoch and Producer-Seq together');
  let producer: ProducerTuple | undefined;
  if (all) {
    if (producerId === '') throw bad('Producer-Id must not be empty');
    const epoch = Number(epochText);
    const seq = Number(seqText);
    if (!WHOLE.test(epochText) || !Number.isSafeInteger(epoch))
      throw bad('Producer-Epoch must be a whole number');
    if (!WHOLE.test(seqText) || !Number.isSafeInteger(seq)) throw bad('Producer-Seq must be a whole number');
    producer = { id: producerId, epoch, seq };
  }
  return {
    producer,
    close: req.header('stream-closed')?.toLowerCase() === 'true',
    contentType: req.header('content-type'),
    writerSeq: req.header('stream-seq'),
  };
}

/** A read (`GET`), as asked. */
export interface ReadAsk {
  offset: string | undefined;
  live: 'long-poll' | 'sse' | null;
  cursor: string | null;
}

export function parseRead(target: string): ReadAsk {
  const query = requestQuery(target);
  const offsets = query.getAll('offset');
  if (offsets.length > 1) throw bad('give one offset');
  const offset = offsets[0];
  if (offset !== undefined && !OFFSET_SYNTAX.test(offset)) throw bad('malformed offset');
  const live = query.get('live');
  if (live !== null && live !== 'long-poll' && live !== 'sse') throw bad("live is 'long-poll' or 'sse'");
  if (live !== null && offset === undefined) throw bad(`live=${live} needs an offset`);
  return { offset, live, cursor: query.get('cursor') };
}

/** The chunks of a JSON-mode body: its value, or an array's elements (`[]` only at create). */
export function parseJson(body: Uint8Array, atCreate: boolean): unknown[] {
  if (body.length === 0) return [];
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new HttpError(400, 'INVALID_JSON', 'job-registry: the body is not valid JSON');
  }
  if (!Array.isArray(value)) return [value];
  if (value.length === 0 && !atCreate)
    throw new HttpError(400, 'INVALID_JSON', 'job-registry: an empty array appends nothing; send values');
  return value;
}

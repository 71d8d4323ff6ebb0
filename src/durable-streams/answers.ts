/**
 * The answers both stream keepers give (Protocol 5): refusals and append results. Imports no `node:`
 * module.
 */
import type { ProducerTuple } from '../core/streams.js';
import type { Answer } from '../protocol/protocol.js';
import { HttpError } from '../protocol/status.js';
import { bad } from './parse.js';
import type { ProducerCheck } from './streams.js';
import { H } from './wire.js';

export function notFound(name: string): HttpError {
  return new HttpError(
    404,
    'JOB_NOT_FOUND',
    `job-registry: no stream '${name.slice(0, 200)}' (it may have expired)`,
  );
}

export function gone(name: string): HttpError {
  return new HttpError(410, 'STREAM_GONE', `job-registry: stream '${name.slice(0, 200)}' was deleted`);
}

export function streamFull(name: string, max: number): HttpError {
  return new HttpError(
    413,
    'PAYLOAD_TOO_LARGE',
    `job-registry: stream '${name.slice(0, 200)}' would hold more than ${max} bytes (maxStreamBytes)`,
  );
}

export function contentTypeMismatch(what: string, holds: string): HttpError {
  return new HttpError(409, 'CONTENT_TYPE_MISMATCH', `job-registry: ${what} holds ${holds}`);
}

/** An append to a closed stream: the close's own retry is a duplicate (204), anything else `409`. */
export function closedAnswer(
  name: string,
  tail: string,
  producer: ProducerTuple | undefined,
  sameClose: boolean,
): Answer {
  if (producer !== undefined && sameClose)
    return {
      kind: 'empty',
      status: 204,
      headers: {
        [H.nextOffset]: tail,
        [H.closed]: 'true',
        [H.producerEpoch]: String(producer.epoch),
        [H.producerSeq]: String(producer.seq),
      },
    };
  throw new HttpError(409, 'STREAM_CLOSED', `job-registry: stream '${name.slice(0, 200)}' is closed`, {
    [H.closed]: 'true',
    [H.nextOffset]: tail,
  });
}

/** A producer's append that was not accepted (Protocol 5.2.1). */
export function producerRefusal(
  check: Exclude<ProducerCheck, { status: 'accepted' }>,
  producer: ProducerTuple,
): Answer {
  switch (check.status) {
    case 'duplicate':
      return {
        kind: 'empty',
        status: 204,
        headers: { [H.producerEpoch]: String(producer.epoch), [H.producerSeq]: String(check.lastSeq) },
      };
    case 'stale_epoch':
      throw new HttpError(403, 'STALE_EPOCH', 'job-registry: a newer producer epoch took over', {
        [H.producerEpoch]: String(check.currentEpoch),
      });
    case 'invalid_epoch_seq':
      throw bad('a new producer epoch starts at Producer-Seq 0');
    case 'sequence_gap':
      throw new HttpError(409, 'SEQUENCE_GAP', `job-registry: expected Producer-Seq ${check.expected}`, {
        [H.expectedSeq]: String(check.expected),
        [H.receivedSeq]: String(check.received),
      });
  }
}

export function seqConflict(given: string, last: string): HttpError {
  return new HttpError(409, 'SEQUENCE_CONFLICT', `job-registry: Stream-Seq ${given} is not after ${last}`);
}

/** An append taken. */
export function appended(
  tail: string,
  close: boolean,
  producer: ProducerTuple | undefined,
  hadBody: boolean,
): Answer {
  const headers: Record<string, string> = { [H.nextOffset]: tail };
  if (close) headers[H.closed] = 'true';
  if (producer !== undefined) {
    headers[H.producerEpoch] = String(producer.epoch);
    headers[H.producerSeq] = String(producer.seq);
  }
  return { kind: 'empty', status: producer !== undefined && hadBody ? 200 : 204, headers };
}

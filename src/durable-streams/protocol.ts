/**
 * The Durable Streams protocol (PROTOCOL.md of the durable-streams project) over a registry: a stream is
 * a job, its chunks the job's tokens, its offsets derived from seq, its close the job's `completed`.
 * Returns the same {@link Protocol} as the dual-call routes, so the Node and fetch adapters serve it.
 * Imports no `node:` module.
 */
import { JobNotFoundError } from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';
import type { JobRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { JobSnapshot } from '../core/types.js';
import type { Caller, JobAction } from '../protocol/access.js';
import type { Ticket } from '../protocol/connections.js';
import { Policy } from '../protocol/policy.js';
import {
  checkRegistry,
  type Answer,
  type HttpRequest,
  type Protocol,
  type Reply,
} from '../protocol/protocol.js';
import { requestPath, requestQuery } from '../protocol/route.js';
import type { SseSink } from '../protocol/sink.js';
import { HttpError } from '../protocol/status.js';
import { resolveDurableStreamsOptions, type DurableStreamsOptions } from './options.js';
import { boundByBytes, readRange, waitFor } from './reader.js';
import { SseReader } from './sse.js';
import { Deadlines } from './deadlines.js';
import { batchAt, checkProducer, isExpired, type StreamMeta } from './streams.js';
import {
  ALLOW_HEADERS,
  COMMON_HEADERS,
  EXPOSE_HEADERS,
  H,
  bytesToToken,
  etag,
  formatOffset,
  isJsonType,
  mediaType,
  parseOffset,
  responseCursor,
  tokensToBytes,
  tokensToJson,
} from './wire.js';

const TTL = /^(0|[1-9]\d*)$/;
const WHOLE = /^\d+$/;
const OFFSET_SYNTAX = /^(-1|now|\d+_\d+)$/;
const CONTENT_TYPE = /^[\w.+-]+\/[\w.+-]+\s*(;.*)?$/;
const METHODS: readonly string[] = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE'];

/**
 * Builds the Durable Streams protocol over a registry: `PUT` creates a stream, `POST` appends (or closes),
 * `GET` reads from an offset (catch-up, `live=long-poll`, `live=sse`), `HEAD` tells its metadata, `DELETE`
 * removes it. A job of the dual-call routes reads as the JSON stream `{basePath}/{job id}`.
 *
 * @example
 * const streams = createDurableStreamsHandler(registry);
 * http.createServer((req, res) => streams(req, res, () => jobs(req, res)));
 * @throws InvalidArgumentError for a malformed option.
 */
export function createDurableStreamsProtocol<Raw>(
  registry: JobRegistry<unknown, unknown>,
  options: DurableStreamsOptions<Raw> = {},
): Protocol<Raw> {
  checkRegistry(registry, 'createDurableStreamsProtocol');
  const o = resolveDurableStreamsOptions(options);
  const policy = new Policy<Raw>(o, options, 'durable streams ', {
    allowHeaders: ALLOW_HEADERS,
    exposeHeaders: EXPOSE_HEADERS,
  });
  // Other origins may embed the streams' bytes only when the `cors` option lets them read them.
  const common = {
    ...COMMON_HEADERS,
    'Cross-Origin-Resource-Policy': o.cors === undefined ? 'same-origin' : 'cross-origin',
  };
  const streams = new Map<string, StreamMeta>();
  // The streams of jobs this registry holds, by job: a job that goes (retention) takes its stream along,
  // whether or not anybody looks it up again.
  const byJob = new Map<string, StreamMeta>();
  const removals = registry.events$.subscribe((e) => {
    if (e.type !== 'removed') return;
    const meta = byJob.get(e.jobId);
    if (meta !== undefined) forget(meta);
  });
  const waits = new Set<() => void>();
  const readers = new Set<SseReader>();
  // Each stream's end by deadline (TTL, Expires-At, idle): nobody needs to read it for it to end.
  const deadlines = new Deadlines<StreamMeta>(
    (meta) => deadlineOf(meta),
    (meta) => expire(meta),
  );

  async function handle(req: HttpRequest<Raw>): Promise<Reply> {
    const path = requestPath(req.target);
    if (path !== o.base && !path.startsWith(o.base + '/')) return { kind: 'next' };
    const name = path.slice(o.base.length + 1);
    const reply = (await route(req, name)) as Answer;
    Object.assign(reply.headers, common);
    return policy.withCors(reply, req);
  }

  async function route(req: HttpRequest<Raw>, name: string): Promise<Reply> {
    const preflight = policy.preflight(req, METHODS);
    if (preflight !== undefined) return preflight;
    if (name === '' || name.length > 1024)
      throw new HttpError(404, 'NOT_FOUND', 'job-registry: a stream path is {basePath}/{name}');
    if (!METHODS.includes(req.method))
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `job-registry: ${req.method} is not a stream method`, {
        Allow: METHODS.join(', '),
      });
    try {
      decodeURIComponent(name);
    } catch {
      throw bad('the stream name holds an invalid percent-encoding');
    }
    const caller = await policy.identify(req);
    switch (req.method) {
      case 'PUT':
        return create(req, name, caller);
      case 'POST':
        return append(req, name, caller);
      case 'GET':
        return read(req, name, caller);
      case 'HEAD':
        return head(name, caller);
      default:
        return remove(name, caller);
    }
  }

  function notFound(name: string): HttpError {
    return new HttpError(
      404,
      'JOB_NOT_FOUND',
      `job-registry: no stream '${name.slice(0, 200)}' (it may have expired)`,
    );
  }

  function bad(message: string): HttpError {
    return new HttpError(400, 'INVALID_REQUEST', `job-registry: ${message}`);
  }

  async function snapshot(jobId: string): Promise<JobSnapshot | undefined> {
    return registry.getJob(jobId) ?? (await registry.findJob(jobId));
  }

  /** The stream and its job now, expiring it first when its time has passed; `undefined` when none. */
  async function lookup(name: string): Promise<{ meta: StreamMeta; snap: JobSnapshot } | undefined> {
    const meta = streams.get(name);
    if (meta !== undefined) {
      if (!meta.softDeleted && isExpired(meta, Date.now())) {
        drop(meta);
        return undefined;
      }
      const snap = await snapshot(meta.jobId);
      if (snap !== undefined) return { meta, snap };
      // The job went (retention, removeJob elsewhere): so did its stream.
      forget(meta);
      return undefined;
    }
    if (!isValidJobId(name)) return undefined;
    const snap = await snapshot(name);
    if (snap === undefined) return undefined;
    return { meta: implicitStream(name), snap };
  }

  /**
   * Deletes a stream: hidden (410) while forks of it are left, its job ended so it holds no quota slot
   * (a fork has its own copy of the data); gone with its job once no fork is left.
   */
  function drop(meta: StreamMeta): void {
    deadlines.clear(meta);
    if (meta.forks > 0) {
      meta.softDeleted = true;
      meta.closed = true;
      const snap = registry.isDisposed ? undefined : registry.getJob(meta.jobId);
      if (snap !== undefined && !isTerminal(snap.state)) registry.updateState(meta.jobId, 'completed');
      return;
    }
    if (!registry.isDisposed) registry.removeJob(meta.jobId);
    forget(meta);
  }

  /** A stream whose job is gone: its name, its timer and its hold on its source go too. */
  function forget(meta: StreamMeta): void {
    deadlines.clear(meta);
    if (byJob.get(meta.jobId) === meta) byJob.delete(meta.jobId);
    // A deleted stream's name stays taken while forks of it are left.
    if (streams.get(meta.name) === meta && !(meta.softDeleted && meta.forks > 0)) streams.delete(meta.name);
    const source = meta.fork?.source;
    if (source !== undefined) {
      delete meta.fork;
      source.forks--;
      if (source.softDeleted && source.forks === 0) drop(source);
    }
  }

  /** The stream when it exists and the caller may act on it; `undefined` otherwise, as for an unknown name. */
  async function visible(
    name: string,
    caller: Caller,
    action: JobAction,
  ): Promise<{ meta: StreamMeta; snap: JobSnapshot } | undefined> {
    const found = await lookup(name);
    if (found === undefined || !(await policy.may(caller, action, found.snap))) return undefined;
    return found;
  }

  /** The stream a request names, or 404; 410 when it was deleted while forks of it are left. */
  async function existing(
    name: string,
    caller: Caller,
    action: JobAction,
  ): Promise<{ meta: StreamMeta; snap: JobSnapshot }> {
    const found = await visible(name, caller, action);
    if (found === undefined) throw notFound(name);
    if (found.meta.softDeleted) throw gone(name);
    return found;
  }

  /** When a stream ends by itself: its Expires-At, its TTL after the last touch, or its idle time. */
  function deadlineOf(meta: StreamMeta): number {
    let at = Infinity;
    if (meta.expiresAt !== undefined) at = Date.parse(meta.expiresAt);
    if (meta.ttlSeconds !== undefined) at = Math.min(at, meta.touchedAt + meta.ttlSeconds * 1000);
    if (meta.expiresAt === undefined && meta.ttlSeconds === undefined && !meta.closed)
      at = meta.touchedAt + o.idleTimeoutMs;
    return at;
  }

  /** A deadline came: an expired stream is deleted; an idle one is closed (its data stays readable). */
  function expire(meta: StreamMeta): void {
    if (streams.get(meta.name) !== meta || meta.softDeleted || registry.isDisposed) return;
    if (isExpired(meta, Date.now())) return drop(meta);
    meta.closed = true;
    const snap = registry.getJob(meta.jobId);
    if (snap !== undefined && !isTerminal(snap.state)) {
      registry.updateState(meta.jobId, 'completed');
      o.logger.warn(
        `job-registry: durable stream '${meta.name.slice(0, 200)}' closed after ${o.idleTimeoutMs} ms without an append or a read (idleTimeoutMs)`,
      );
    }
  }

  function gone(name: string): HttpError {
    return new HttpError(410, 'STREAM_GONE', `job-registry: stream '${name.slice(0, 200)}' was deleted`);
  }

  async function create(req: HttpRequest<Raw>, name: string, caller: Caller): Promise<Reply> {
    policy.refuseWhileDraining();
    await policy.require(caller, 'create', 'create streams');
    const ttl = req.header('stream-ttl');
    const expiresAt = req.header('stream-expires-at');
    if (ttl !== undefined && expiresAt !== undefined)
      throw bad('give Stream-TTL or Stream-Expires-At, not both');
    if (ttl !== undefined && !(TTL.test(ttl) && Number.isSafeInteger(Number(ttl))))
      throw bad('Stream-TTL must be a whole number of seconds');
    if (expiresAt !== undefined && !Number.isFinite(Date.parse(expiresAt)))
      throw bad('Stream-Expires-At must be an RFC 3339 timestamp');
    if (expiresAt !== undefined && Date.parse(expiresAt) <= Date.now())
      throw bad('Stream-Expires-At is in the past');
    const forkedFrom = req.header('stream-forked-from');
    const forkOffset = req.header('stream-fork-offset');
    const subText = req.header('stream-fork-sub-offset');
    if (forkOffset !== undefined && (forkedFrom === undefined || parseOffset(forkOffset) === undefined))
      throw bad('Stream-Fork-Offset must be an offset of the source, with Stream-Forked-From');
    if (subText !== undefined && (forkedFrom === undefined || !TTL.test(subText)))
      throw bad('Stream-Fork-Sub-Offset must be a whole number, with Stream-Forked-From');
    const subOffset = subText === undefined ? 0 : Number(subText);
    if (subOffset > 0 && forkOffset === undefined)
      throw bad('Stream-Fork-Sub-Offset needs Stream-Fork-Offset');
    const given = req.header('content-type');
    const valid = given !== undefined && CONTENT_TYPE.test(given.trim());
    if (given !== undefined && !valid) throw bad('malformed Content-Type; give a type/subtype');
    let contentType = valid ? given.trim() : 'application/octet-stream';
    const closed = req.header('stream-closed')?.toLowerCase() === 'true';
    const body = await req.readBytes(policy.body);
    if (body.length > o.maxStreamBytes) throw streamFull(name);
    const found = await lookup(name);
    if (found !== undefined) {
      const m = found.meta;
      // A name another principal holds is taken: nothing about its stream is told.
      if (!(await policy.may(caller, 'read', found.snap)))
        throw new HttpError(409, 'STREAM_EXISTS', `job-registry: the stream name '${name}' is taken`);
      if (m.softDeleted)
        throw new HttpError(
          409,
          'STREAM_EXISTS',
          `job-registry: '${name}' was deleted but forks of it are left`,
        );
      const same =
        m.created &&
        (mediaType(m.contentType) === mediaType(contentType) || (forkedFrom !== undefined && !valid)) &&
        (m.fork === undefined
          ? forkedFrom === undefined
          : forkedFrom === `${o.base}/${m.fork.source.name}` &&
            (forkOffset === undefined || forkOffset === m.fork.offset) &&
            subOffset === m.fork.subOffset) &&
        m.ttlSeconds === (ttl === undefined ? undefined : Number(ttl)) &&
        m.expiresAt === expiresAt &&
        m.createdClosed === closed;
      if (!same)
        throw new HttpError(
          409,
          'STREAM_EXISTS',
          `job-registry: stream '${name}' exists with another configuration`,
        );
      return {
        kind: 'empty',
        status: 200,
        headers: streamHeaders(found.snap, { 'Content-Type': m.contentType }),
      };
    }
    let inherited: unknown[] = [];
    let source: StreamMeta | undefined;
    let ttlSeconds = ttl === undefined ? undefined : Number(ttl);
    let expires = expiresAt;
    if (forkedFrom !== undefined) {
      const from = await forkSource(forkedFrom, forkOffset, subOffset, caller);
      source = from.meta;
      if (valid && mediaType(contentType) !== mediaType(source.contentType))
        throw new HttpError(
          409,
          'CONTENT_TYPE_MISMATCH',
          `job-registry: the source holds ${source.contentType}`,
        );
      contentType = source.contentType;
      inherited = from.tokens;
      if (ttlSeconds === undefined && expires === undefined) {
        ttlSeconds = source.ttlSeconds;
        expires = source.expiresAt;
      }
    }
    const chunks = isJsonType(contentType)
      ? parseJson(body, true)
      : body.length > 0
        ? [bytesToToken(body)]
        : [];
    const bytes = (source?.bytes ?? 0) + body.length;
    if (bytes > o.maxStreamBytes) throw streamFull(name);
    if (streams.get(name) !== undefined)
      throw new HttpError(409, 'STREAM_EXISTS', `job-registry: stream '${name}' was created meanwhile`);
    policy.checkQuota(registry, caller);
    const owner = caller.principal?.id;
    const jobId = registry.createJob(owner === undefined ? {} : { owner });
    // A stream is written by HTTP appends, not an executor: running from the start, never "unclaimed".
    registry.updateState(jobId, 'running');
    const meta: StreamMeta = {
      name,
      jobId,
      contentType,
      created: true,
      touchedAt: Date.now(),
      createdClosed: closed,
      closed,
      bytes,
      producers: new Map(),
      batchStarts: [],
      forks: 0,
      softDeleted: false,
    };
    if (ttlSeconds !== undefined) meta.ttlSeconds = ttlSeconds;
    if (expires !== undefined) meta.expiresAt = expires;
    if (source !== undefined) {
      meta.fork = { source, subOffset };
      if (forkOffset !== undefined) meta.fork.offset = forkOffset;
      source.forks++;
      for (const c of inherited) registry.emit(jobId, c);
    }
    if (chunks.length > 0) meta.batchStarts.push(inherited.length);
    for (const c of chunks) registry.emit(jobId, c);
    if (closed) registry.updateState(jobId, 'completed');
    streams.set(name, meta);
    byJob.set(jobId, meta);
    deadlines.schedule(meta);
    try {
      await registry.flush();
    } catch (e) {
      // Not stored: nothing is left half-made, and the quota slot is free again.
      drop(meta);
      throw e;
    }
    const headers: Record<string, string> = {
      'Content-Type': contentType,
      [H.nextOffset]: formatOffset(inherited.length + chunks.length),
      // Built from the configured path only, never from the request's Host or an absolute-form target.
      Location: `${o.publicOrigin}${req.mountPath}${o.base}/${name}`,
    };
    if (closed) headers[H.closed] = 'true';
    return { kind: 'empty', status: 201, headers };
  }

  /**
   * The chunks a fork starts with: the source's up to the fork offset (its tail by default), plus a
   * sub-offset into the append there (JSON: that many values of it; bytes: that many bytes of it).
   */
  async function forkSource(
    path: string,
    offset: string | undefined,
    subOffset: number,
    caller: Caller,
  ): Promise<{ meta: StreamMeta; tokens: unknown[] }> {
    const sourceName = path.startsWith(o.base + '/') ? path.slice(o.base.length + 1) : path;
    // A fork reads its source: a source the caller may not read is answered as unknown.
    const found = await visible(sourceName, caller, 'read');
    if (found === undefined)
      throw new HttpError(
        404,
        'JOB_NOT_FOUND',
        `job-registry: no source stream '${sourceName.slice(0, 200)}'`,
      );
    if (found.meta.softDeleted)
      throw new HttpError(409, 'STREAM_GONE', `job-registry: the source '${sourceName}' was deleted`);
    const { meta, snap } = found;
    const at = offset === undefined ? snap.tokenCount : parseOffset(offset)!;
    if (at > snap.tokenCount) throw bad('Stream-Fork-Offset is beyond the source stream');
    let upto = at;
    let prefix: string | undefined;
    if (subOffset > 0) {
      if (isJsonType(meta.contentType)) {
        const batch = batchAt(meta, at, snap.tokenCount);
        if (batch === undefined || subOffset > batch.size)
          throw bad('Stream-Fork-Sub-Offset is beyond the append at Stream-Fork-Offset');
        upto = at + subOffset;
      } else {
        if (at >= snap.tokenCount) throw bad('Stream-Fork-Sub-Offset is beyond the source stream');
        const [next] = await readRange(registry, meta.jobId, at, at + 1, 1);
        if (next === undefined || subOffset > (next as string).length)
          throw bad('Stream-Fork-Sub-Offset is beyond the append at Stream-Fork-Offset');
        prefix = (next as string).slice(0, subOffset);
      }
    }
    const tokens = await readRange(registry, meta.jobId, 0, upto, Infinity);
    if (tokens.length < upto) throw bad('the source stream no longer holds Stream-Fork-Offset');
    if (prefix !== undefined) tokens.push(prefix);
    return { meta, tokens };
  }

  async function append(req: HttpRequest<Raw>, name: string, caller: Caller): Promise<Reply> {
    const producerId = req.header('producer-id');
    const epochText = req.header('producer-epoch');
    const seqText = req.header('producer-seq');
    const some = producerId !== undefined || epochText !== undefined || seqText !== undefined;
    const all = producerId !== undefined && epochText !== undefined && seqText !== undefined;
    if (some && !all) throw bad('send Producer-Id, Producer-Epoch and Producer-Seq together');
    let producer: { id: string; epoch: number; seq: number } | undefined;
    if (all) {
      if (producerId === '') throw bad('Producer-Id must not be empty');
      const epoch = Number(epochText);
      const seq = Number(seqText);
      if (!WHOLE.test(epochText) || !Number.isSafeInteger(epoch))
        throw bad('Producer-Epoch must be a whole number');
      if (!WHOLE.test(seqText) || !Number.isSafeInteger(seq))
        throw bad('Producer-Seq must be a whole number');
      producer = { id: producerId, epoch, seq };
    }
    const close = req.header('stream-closed')?.toLowerCase() === 'true';
    const contentType = req.header('content-type');
    const writerSeq = req.header('stream-seq');
    const body = await req.readBytes(policy.body);
    const found = await existing(name, caller, 'append');
    const { meta } = found;
    if (!meta.created)
      throw new HttpError(
        409,
        'NOT_WRITABLE',
        `job-registry: '${name}' is a job of the dual-call routes; its executor writes it, not appends`,
      );
    meta.touchedAt = Date.now();
    // Everything from here to the emits is synchronous: a producer's check and its append are one step.
    const snap = registry.getJob(meta.jobId) ?? found.snap;
    const tail = (): string => formatOffset(registry.getJob(meta.jobId)?.tokenCount ?? snap.tokenCount);
    const closedAnswer = (): Answer => {
      if (producer !== undefined && sameTuple(meta.closedBy, producer))
        return {
          kind: 'empty',
          status: 204,
          headers: {
            [H.nextOffset]: tail(),
            [H.closed]: 'true',
            [H.producerEpoch]: String(producer.epoch),
            [H.producerSeq]: String(producer.seq),
          },
        };
      throw new HttpError(409, 'STREAM_CLOSED', `job-registry: stream '${name}' is closed`, {
        [H.closed]: 'true',
        [H.nextOffset]: tail(),
      });
    };
    if (body.length === 0 && !close) throw bad('an append needs a body (or Stream-Closed: true to close)');
    if (isTerminal(snap.state)) {
      // Closing a closed stream is idempotent; a producer's close counts as its append would.
      if (body.length === 0 && producer === undefined)
        return { kind: 'empty', status: 204, headers: { [H.nextOffset]: tail(), [H.closed]: 'true' } };
      return closedAnswer();
    }
    if (body.length > 0) {
      if (meta.bytes + body.length > o.maxStreamBytes) throw streamFull(name);
      if (contentType === undefined || contentType.trim() === '') throw bad('an append needs a Content-Type');
      if (mediaType(contentType) !== mediaType(meta.contentType))
        throw new HttpError(
          409,
          'CONTENT_TYPE_MISMATCH',
          `job-registry: stream '${name}' holds ${meta.contentType}`,
        );
    }
    let check =
      producer === undefined
        ? undefined
        : checkProducer(meta.producers.get(producer.id), producer.epoch, producer.seq);
    if (check !== undefined && check.status !== 'accepted') return producerRefusal(check, producer!);
    if (writerSeq !== undefined && body.length > 0) {
      if (meta.lastWriterSeq !== undefined && writerSeq <= meta.lastWriterSeq)
        throw new HttpError(
          409,
          'SEQUENCE_CONFLICT',
          `job-registry: Stream-Seq ${writerSeq} is not after ${meta.lastWriterSeq}`,
        );
    }
    const chunks =
      body.length === 0 ? [] : isJsonType(meta.contentType) ? parseJson(body, false) : [bytesToToken(body)];
    if (chunks.length > 0 && isJsonType(meta.contentType))
      meta.batchStarts.push(registry.getJob(meta.jobId)?.tokenCount ?? snap.tokenCount);
    for (const c of chunks) registry.emit(meta.jobId, c);
    meta.bytes += body.length;
    if (check?.status === 'accepted') meta.producers.set(producer!.id, check.next);
    if (writerSeq !== undefined && body.length > 0) meta.lastWriterSeq = writerSeq;
    if (close) {
      registry.updateState(meta.jobId, 'completed');
      meta.closed = true;
      if (producer !== undefined) meta.closedBy = producer;
    }
    check = undefined;
    await registry.flush();
    const headers: Record<string, string> = { [H.nextOffset]: tail() };
    if (close) headers[H.closed] = 'true';
    if (producer !== undefined) {
      headers[H.producerEpoch] = String(producer.epoch);
      headers[H.producerSeq] = String(producer.seq);
    }
    return { kind: 'empty', status: producer !== undefined && body.length > 0 ? 200 : 204, headers };
  }

  function producerRefusal(
    check: Exclude<ReturnType<typeof checkProducer>, { status: 'accepted' }>,
    producer: { id: string; epoch: number; seq: number },
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

  async function head(name: string, caller: Caller): Promise<Reply> {
    const found = await visible(name, caller, 'read');
    if (found === undefined) return { kind: 'empty', status: 404, headers: {} };
    if (found.meta.softDeleted) return { kind: 'empty', status: 410, headers: {} };
    const { meta, snap } = found;
    const headers = streamHeaders(snap, { 'Cache-Control': 'no-store', 'Content-Type': meta.contentType });
    if (meta.ttlSeconds !== undefined) headers[H.ttl] = String(meta.ttlSeconds);
    if (meta.expiresAt !== undefined) headers[H.expiresAt] = meta.expiresAt;
    headers.ETag = etag(name, '-1', formatOffset(snap.tokenCount), isTerminal(snap.state));
    return { kind: 'empty', status: 200, headers };
  }

  async function remove(name: string, caller: Caller): Promise<Reply> {
    const found = await existing(name, caller, 'cancel');
    if (found.meta.created) drop(found.meta);
    else if (registry.removeJob(found.meta.jobId) === undefined && !isTerminal(found.snap.state)) {
      try {
        await registry.cancel(found.meta.jobId, 'stream deleted');
      } catch (e) {
        // Gone meanwhile (ended and expired, or removed elsewhere): deleted all the same.
        if (!(e instanceof JobNotFoundError)) throw e;
      }
    }
    return { kind: 'empty', status: 204, headers: {} };
  }

  async function read(req: HttpRequest<Raw>, name: string, caller: Caller): Promise<Reply> {
    const query = requestQuery(req.target);
    const offsets = query.getAll('offset');
    if (offsets.length > 1) throw bad('give one offset');
    const offset = offsets[0];
    if (offset !== undefined && !OFFSET_SYNTAX.test(offset)) throw bad('malformed offset');
    const live = query.get('live');
    if (live !== null && live !== 'long-poll' && live !== 'sse') throw bad("live is 'long-poll' or 'sse'");
    if (live !== null && offset === undefined) throw bad(`live=${live} needs an offset`);
    const cursor = query.get('cursor');
    const found = await existing(name, caller, live === null ? 'read' : 'stream');
    const { meta } = found;
    let snap = found.snap;
    meta.touchedAt = Date.now();
    const json = isJsonType(meta.contentType);
    let from =
      offset === undefined || offset === '-1' ? 0 : offset === 'now' ? snap.tokenCount : parseOffset(offset);
    if (from === undefined) throw bad('malformed offset');
    from = Math.min(from, snap.tokenCount);
    if (live === 'sse') return sse(meta, snap, from, cursor, policy.admit(meta.jobId, caller));
    if (offset === 'now' && live === null) {
      const headers = streamHeaders(snap, { 'Cache-Control': 'no-store', 'Content-Type': meta.contentType });
      headers[H.upToDate] = 'true';
      return bodyReply(headers, json ? '[]' : new Uint8Array(0));
    }
    let upto = snap.tokenCount;
    if (live === 'long-poll' && from >= upto) {
      if (isTerminal(snap.state))
        return {
          kind: 'empty',
          status: 204,
          headers: { [H.nextOffset]: formatOffset(from), [H.upToDate]: 'true', [H.closed]: 'true' },
        };
      const ticket = policy.admit(meta.jobId, caller);
      let result: Awaited<ReturnType<typeof waitFor>>;
      try {
        result = await waitFor(registry, meta.jobId, from, o.longPollTimeoutMs, waits);
      } finally {
        policy.release(ticket);
      }
      meta.touchedAt = Date.now();
      snap = (await snapshot(meta.jobId)) ?? snap;
      upto = snap.tokenCount;
      if (result !== 'data' && upto <= from) {
        const headers: Record<string, string> = {
          [H.nextOffset]: formatOffset(from),
          [H.upToDate]: 'true',
          [H.cursor]: responseCursor(cursor, o.cursorIntervalSeconds),
        };
        if (isTerminal(snap.state)) headers[H.closed] = 'true';
        return { kind: 'empty', status: 204, headers };
      }
    }
    const tokens = boundByBytes(
      await readRange(registry, meta.jobId, from, upto, o.maxChunksPerRead),
      o.maxReadBytes,
      json,
    );
    const next = from + tokens.length;
    const upToDate = next >= upto;
    const closed = upToDate && isTerminal(snap.state);
    const headers: Record<string, string> = {
      'Content-Type': meta.contentType,
      [H.nextOffset]: formatOffset(next),
    };
    if (live === 'long-poll') headers[H.cursor] = responseCursor(cursor, o.cursorIntervalSeconds);
    if (upToDate) headers[H.upToDate] = 'true';
    if (closed) headers[H.closed] = 'true';
    const tag = etag(name, offset ?? '-1', formatOffset(next), closed);
    headers.ETag = tag;
    if (req.header('if-none-match') === tag) return { kind: 'empty', status: 304, headers: { ETag: tag } };
    return bodyReply(headers, json ? tokensToJson(tokens) : tokensToBytes(tokens));
  }

  function sse(
    meta: StreamMeta,
    snap: JobSnapshot,
    from: number,
    cursor: string | null,
    ticket: Ticket,
  ): Reply {
    const text = meta.contentType.toLowerCase();
    const base64 = !(mediaType(text).startsWith('text/') || isJsonType(text));
    const headers: Record<string, string> = {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    };
    if (base64) headers[H.sseEncoding] = 'base64';
    return {
      kind: 'sse',
      status: 200,
      headers,
      start: (sink: SseSink) => {
        const reader = new SseReader(sink, {
          registry,
          jobId: meta.jobId,
          mode: base64 ? 'base64' : isJsonType(text) ? 'json' : 'text',
          from,
          known: snap.tokenCount,
          cursor: () => responseCursor(cursor, o.cursorIntervalSeconds),
          keepAliveMs: o.longPollTimeoutMs,
          touch: () => void (meta.touchedAt = Date.now()),
          onClose: (r) => {
            readers.delete(r);
            policy.release(ticket);
          },
        });
        readers.add(reader);
        reader.start();
      },
    };
  }

  return policy.serve(handle, {
    errorHeaders: common,
    close: () => {
      removals.unsubscribe();
      deadlines.close();
      for (const w of [...waits]) w();
      for (const r of [...readers]) r.close();
    },
    connections: () => readers.size,
  });

  function streamFull(name: string): HttpError {
    return new HttpError(
      413,
      'PAYLOAD_TOO_LARGE',
      `job-registry: stream '${name.slice(0, 200)}' would hold more than ${o.maxStreamBytes} bytes (maxStreamBytes)`,
    );
  }
}

/** The stream a job of the dual-call routes is: JSON, each token one value. */
function implicitStream(jobId: string): StreamMeta {
  return {
    name: jobId,
    jobId,
    contentType: 'application/json',
    created: false,
    touchedAt: Date.now(),
    createdClosed: false,
    closed: false,
    bytes: 0,
    producers: new Map(),
    batchStarts: [],
    forks: 0,
    softDeleted: false,
  };
}

function streamHeaders(snap: JobSnapshot, extra: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = { ...extra, [H.nextOffset]: formatOffset(snap.tokenCount) };
  if (isTerminal(snap.state)) headers[H.closed] = 'true';
  return headers;
}

function sameTuple(
  a: { id: string; epoch: number; seq: number } | undefined,
  b: { id: string; epoch: number; seq: number },
): boolean {
  return a !== undefined && a.id === b.id && a.epoch === b.epoch && a.seq === b.seq;
}

/** The chunks of a JSON-mode body: its value, or an array's elements (`[]` only at create). */
function parseJson(body: Uint8Array, atCreate: boolean): unknown[] {
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

function bodyReply(headers: Record<string, string>, body: Uint8Array | string): Reply {
  return { kind: 'body', status: 200, headers, body };
}

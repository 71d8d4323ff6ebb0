/**
 * The Durable Streams protocol (PROTOCOL.md of the durable-streams project) over a registry: a stream is
 * a job, its chunks the job's tokens, its offsets derived from seq, its close the job's `completed`.
 * Returns the same {@link Protocol} as the dual-call routes, so the Node and fetch adapters serve it.
 * The streams live in this process (local.ts) or, on a shared backend that keeps them, in the backend
 * (stored.ts), so every process serves every stream. Imports no `node:` module.
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
import { requestPath } from '../protocol/route.js';
import type { SseSink } from '../protocol/sink.js';
import { HttpError } from '../protocol/status.js';
import { gone, notFound, streamFull } from './answers.js';
import { LocalStreams } from './local.js';
import { resolveDurableStreamsOptions, type DurableStreamsOptions } from './options.js';
import { bad, parseAppend, parseCreate, parseRead } from './parse.js';
import { boundByBytes, waitFor } from './reader.js';
import { SseReader } from './sse.js';
import { StoredStreams } from './stored.js';
import type { Found, StreamKeeper, StreamMeta } from './streams.js';
import {
  ALLOW_HEADERS,
  COMMON_HEADERS,
  EXPOSE_HEADERS,
  H,
  etag,
  formatOffset,
  isJsonType,
  mediaType,
  parseOffset,
  responseCursor,
  tokensToBytes,
  tokensToJson,
} from './wire.js';

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
  const policy = new Policy<Raw>(registry, o, options, 'durable streams ', {
    allowHeaders: ALLOW_HEADERS,
    exposeHeaders: EXPOSE_HEADERS,
  });
  // Other origins may embed the streams' bytes only when the `cors` option lets them read them.
  const common = {
    ...COMMON_HEADERS,
    'Cross-Origin-Resource-Policy': o.cors === undefined ? 'same-origin' : 'cross-origin',
  };
  const store = registry.streamStore;
  const keeper: StreamKeeper<Raw> =
    store === undefined
      ? new LocalStreams(registry, o, policy)
      : new StoredStreams(registry, store, o, policy);
  const waits = new Set<() => void>();
  const readers = new Set<SseReader>();

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

  /** The stream and its job now; a job of the dual-call routes reads as a JSON stream. */
  async function lookup(name: string): Promise<Found | undefined> {
    const found = await keeper.lookup(name);
    if (found !== undefined || !isValidJobId(name)) return found;
    const snap = registry.getJob(name) ?? (await registry.findJob(name));
    return snap === undefined ? undefined : { meta: implicitStream(name), snap };
  }

  /** The stream when it exists and the caller may act on it; `undefined` otherwise, as for an unknown name. */
  async function visible(name: string, caller: Caller, action: JobAction): Promise<Found | undefined> {
    const found = await lookup(name);
    if (found === undefined || !(await policy.may(caller, action, found.snap))) return undefined;
    return found;
  }

  /** The stream a request names, or 404; 410 when it was deleted while forks of it are left. */
  async function existing(name: string, caller: Caller, action: JobAction): Promise<Found> {
    const found = await visible(name, caller, action);
    if (found === undefined) throw notFound(name);
    if (found.meta.softDeleted) throw gone(name);
    return found;
  }

  async function create(req: HttpRequest<Raw>, name: string, caller: Caller): Promise<Reply> {
    policy.refuseWhileDraining();
    await policy.require(caller, 'create', 'create streams');
    const ask = parseCreate(req, Date.now());
    const body = await req.readBytes(policy.body);
    if (body.length > o.maxStreamBytes) throw streamFull(name, o.maxStreamBytes);
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
        (mediaType(m.contentType) === mediaType(ask.contentType) ||
          (ask.forkedFrom !== undefined && ask.given === undefined)) &&
        (m.fork === undefined
          ? ask.forkedFrom === undefined
          : ask.forkedFrom === `${o.base}/${m.fork.sourceName}` &&
            (ask.forkOffset === undefined || ask.forkOffset === m.fork.offset) &&
            ask.subOffset === m.fork.subOffset) &&
        m.ttlSeconds === ask.ttlSeconds &&
        m.expiresAt === ask.expiresAt &&
        m.createdClosed === ask.closed;
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
    if (ask.forkedFrom === undefined) return keeper.create({ req, name, ask, body, caller });
    const path = ask.forkedFrom;
    const sourceName = path.startsWith(o.base + '/') ? path.slice(o.base.length + 1) : path;
    // A fork reads its source: a source the caller may not read is answered as unknown.
    const source = await visible(sourceName, caller, 'read');
    if (source === undefined)
      throw new HttpError(
        404,
        'JOB_NOT_FOUND',
        `job-registry: no source stream '${sourceName.slice(0, 200)}'`,
      );
    if (source.meta.softDeleted)
      throw new HttpError(409, 'STREAM_GONE', `job-registry: the source '${sourceName}' was deleted`);
    return keeper.create({ req, name, ask, body, caller, source });
  }

  async function append(req: HttpRequest<Raw>, name: string, caller: Caller): Promise<Reply> {
    const ask = parseAppend(req);
    const body = await req.readBytes(policy.body);
    const found = await existing(name, caller, 'append');
    if (!found.meta.created)
      throw new HttpError(
        409,
        'NOT_WRITABLE',
        `job-registry: '${name}' is a job of the dual-call routes; its executor writes it, not appends`,
      );
    if (body.length === 0 && !ask.close)
      throw bad('an append needs a body (or Stream-Closed: true to close)');
    return keeper.append(found, ask, body, name);
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
    if (found.meta.created) await keeper.remove(found);
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
    const { offset, live, cursor } = parseRead(req.target);
    const found = await existing(name, caller, live === null ? 'read' : 'stream');
    const { meta } = found;
    let snap = found.snap;
    keeper.touch(meta);
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
        result = await waitFor(keeper.tokens$(meta, from), o.longPollTimeoutMs, waits);
      } finally {
        policy.release(ticket);
      }
      keeper.touch(meta);
      snap = registry.getJob(meta.jobId) ?? (await registry.findJob(meta.jobId)) ?? snap;
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
      await keeper.range(meta, from, upto, o.maxChunksPerRead),
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
          tokens$: keeper.tokens$(meta, from),
          mode: base64 ? 'base64' : isJsonType(text) ? 'json' : 'text',
          from,
          known: snap.tokenCount,
          cursor: () => responseCursor(cursor, o.cursorIntervalSeconds),
          keepAliveMs: o.longPollTimeoutMs,
          touch: () => keeper.touch(meta),
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
      keeper.close();
      for (const w of [...waits]) w();
      for (const r of [...readers]) r.close();
    },
    connections: () => readers.size,
  });
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

function bodyReply(headers: Record<string, string>, body: Uint8Array | string): Reply {
  return { kind: 'body', status: 200, headers, body };
}

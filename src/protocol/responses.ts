/**
 * OpenAI-compatible background responses over the registry: `POST {base}` (with `background` and/or
 * `stream`), `GET {base}/{id}` (with `stream=true&starting_after=N` to resume), `POST {base}/{id}/cancel`.
 * A response is a job (`resp_` + its job id); its tokens are the text deltas. A preset of both handlers:
 * `createResponsesHandler` (Node) and `createFetchResponsesHandler` (`job-registry/fetch`). Imports no
 * `node:` module.
 */
import { InvalidArgumentError, JobCancelledError, JobFailedError, isPublicError } from '../core/errors.js';
import { isValidJobId } from '../core/ids.js';
import type { JobRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { Executor, JobSnapshot, PayloadExecutor } from '../core/types.js';
import type { AccessOptions, Caller } from './access.js';
import { resolveHandlerOptions, type HandlerOptions } from './options.js';
import { Policy, SSE_HEADERS } from './policy.js';
import { checkRegistry, type Answer, type HttpRequest, type Protocol, type Reply } from './protocol.js';
import { requestPath, requestQuery } from './route.js';
import {
  PRELUDE,
  deltaEncoder,
  endEvents,
  jobIdOf,
  preludeEvents,
  responseObject,
  statusOf,
  type ResponseInfo,
} from './responses-wire.js';
import { HttpError } from './status.js';
import { TokenStream } from './stream.js';
import { CANCEL_REASON, visibleError } from './wire.js';

/** The create request body, as the preset reads it. */
export interface ResponseCreate {
  /** The model asked for; reported back in the response object. */
  model?: string;
  /** The input, as the client sent it; `toPayload` reads it. */
  input?: unknown;
  /** System instructions; reported back in the response object. */
  instructions?: string;
  /** Answer at once with the response object, while the work goes on. */
  background?: boolean;
  /** Answer with the response's event stream. */
  stream?: boolean;
  /** The most output tokens wanted; reported back in the response object, and `toPayload` may use it. */
  max_output_tokens?: number;
  /** Key-value pairs reported back in the response object. */
  metadata?: Record<string, string>;
}

/** Options of the Responses preset. */
export interface ResponsesOptions<T, P, Req>
  extends
    AccessOptions<Req>,
    Pick<
      HandlerOptions<T, P, Req>,
      | 'maxBodyBytes'
      | 'bodyTimeoutMs'
      | 'heartbeatMs'
      | 'retryMs'
      | 'maxBufferedBytes'
      | 'cors'
      | 'exposeErrors'
      | 'maxJobsPerPrincipal'
      | 'maxStreamsPerJob'
      | 'maxStreamsPerPrincipal'
      | 'maxConnections'
      | 'retryAfterSeconds'
      | 'logger'
    > {
  /** Where the routes live. @defaultValue `/v1/responses` */
  basePath?: string;
  /** Runs a response's payload (as `toPayload` made it); see {@link PayloadExecutor} for what it may return. */
  execute: PayloadExecutor<T, P>;
  /** Maps a create request to the executor's payload; throw (a `PublicError` to show why) to answer `400`. */
  toPayload: (request: ResponseCreate) => P;
  /** A token's text. @defaultValue `String(token)` */
  text?: (token: T) => string;
  /** The `model` reported for a response this process did not create (another process's). @defaultValue `'job-registry'` */
  model?: string;
}

/** Builds the Responses protocol. @throws InvalidArgumentError for a malformed option. */
export function createResponsesProtocol<T, P, Raw>(
  registry: JobRegistry<T, P>,
  options: ResponsesOptions<T, P, Raw>,
): Protocol<Raw> {
  if (typeof options?.execute !== 'function' || typeof options.toPayload !== 'function')
    throw new InvalidArgumentError('the Responses preset needs execute and toPayload functions');
  checkRegistry(registry, 'createResponsesHandler');
  const o = resolveHandlerOptions<T, P, Raw>({ ...options, basePath: options.basePath ?? '/v1/responses' }, [
    'toPayload',
    'text',
    'model',
    'notFound',
  ]);
  const base = o.base;
  // OpenAI's error shape: { error: { message, type, code } }.
  const policy = new Policy<Raw>(registry, o, options, '', {
    errorBody: (err) => ({
      error: {
        message: err.message,
        type: err.status >= 500 ? 'server_error' : 'invalid_request_error',
        code: err.code,
      },
    }),
  });
  const { access, tracker } = policy;
  const anyRegistry = registry as JobRegistry<unknown, unknown>;
  const text = options.text ?? ((t: T) => String(t));
  const defaultModel = options.model ?? 'job-registry';
  // What each response was created with, for the objects that echo it (jobs of other processes get defaults).
  const infos = new Map<string, ResponseInfo>();
  registry.events$.subscribe((e) => {
    if (e.type === 'removed') infos.delete(e.jobId);
  });
  const infoOf = (jobId: string): ResponseInfo =>
    infos.get(jobId) ?? { model: defaultModel, metadata: {}, instructions: null, maxOutputTokens: null };

  async function handle(req: HttpRequest<Raw>): Promise<Reply> {
    const raw = requestPath(req.target);
    const path = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
    let route: { kind: 'create' | 'get' | 'cancel'; allow: string[]; id?: string };
    if (path === base) route = { kind: 'create', allow: ['POST'] };
    else if (path.startsWith(base + '/')) {
      const [rid, action, ...more] = path.slice(base.length + 1).split('/');
      const id = jobIdOf(rid ?? '');
      if (
        id === undefined ||
        !isValidJobId(id) ||
        more.length > 0 ||
        (action !== undefined && action !== 'cancel')
      )
        throw new HttpError(404, 'NOT_FOUND', `job-registry: no route ${path.slice(0, 200)}`);
      route =
        action === 'cancel' ? { kind: 'cancel', allow: ['POST'], id } : { kind: 'get', allow: ['GET'], id };
    } else return { kind: 'next' };
    const preflight = policy.preflight(req, route.allow);
    if (preflight !== undefined) return preflight;
    policy.checkMethod(req, route.allow);
    const caller = await policy.identify(req);
    const reply =
      route.kind === 'create'
        ? await create(req, caller)
        : route.kind === 'cancel'
          ? await cancel(route.id!, caller)
          : await retrieve(req, route.id!, caller);
    return policy.withCors(reply, req);
  }

  function notFound(id: string): HttpError {
    return new HttpError(
      404,
      'JOB_NOT_FOUND',
      `job-registry: no response 'resp_${id}' (it may have expired)`,
    );
  }

  function visible(id: string, caller: Caller, action: 'read' | 'stream' | 'cancel'): Promise<JobSnapshot> {
    return policy.visibleJob(anyRegistry, id, caller, action, notFound);
  }

  async function create(req: HttpRequest<Raw>, caller: Caller): Promise<Reply> {
    policy.refuseWhileDraining();
    await policy.require(caller, 'create', 'create responses');
    const body = (await req.readJson(policy.body)) as ResponseCreate;
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw new HttpError(400, 'INVALID_PAYLOAD', 'job-registry: the body must be a JSON object');
    let payload: P;
    try {
      payload = options.toPayload(body);
    } catch (e) {
      throw new HttpError(
        400,
        'INVALID_PAYLOAD',
        `job-registry: ${isPublicError(e) ? (e as Error).message : 'invalid request'}`,
      );
    }
    policy.checkQuota(anyRegistry, caller);
    const owner = caller.principal?.id;
    const id = registry.createJob({ payload, ...(owner !== undefined ? { owner } : {}) });
    infos.set(id, {
      model: typeof body.model === 'string' ? body.model : defaultModel,
      metadata: body.metadata !== null && typeof body.metadata === 'object' ? body.metadata : {},
      instructions: typeof body.instructions === 'string' ? body.instructions : null,
      maxOutputTokens: typeof body.max_output_tokens === 'number' ? body.max_output_tokens : null,
    });
    // Every response is created with its payload: the executor never sees undefined.
    registry.executeAndStream(id, options.execute as Executor<T, P>);
    await policy.publish(anyRegistry, id);
    const snap = (await registry.findJob(id))!;
    if (body.stream === true) {
      try {
        return stream(req, snap, -1, caller);
      } catch (e) {
        // The stream was refused (a stream limit): no response runs on for a client that never learns its id.
        registry.removeJob(id);
        throw e;
      }
    }
    if (body.background === true)
      return json(200, responseObject(snap, statusOf(snap.state), infoOf(id), ''));
    // Neither: answer once the response is done, as a plain create does.
    return json(200, await objectOf(await settled(id)));
  }

  async function retrieve(req: HttpRequest<Raw>, id: string, caller: Caller): Promise<Reply> {
    const query = requestQuery(req.target);
    if (query.get('stream') !== 'true') return json(200, await objectOf(await visible(id, caller, 'read')));
    const raw = query.get('starting_after');
    let after = -1;
    if (raw !== null && raw !== '') {
      if (!/^\d{1,15}$/.test(raw))
        throw new HttpError(
          400,
          'INVALID_RESUME_POINT',
          'job-registry: starting_after must be a sequence number',
        );
      after = Number(raw);
    }
    return stream(req, await visible(id, caller, 'stream'), after, caller);
  }

  async function cancel(id: string, caller: Caller): Promise<Reply> {
    const before = await visible(id, caller, 'cancel');
    const moved = await registry.cancel(id, CANCEL_REASON);
    const after = await registry.findJob(id);
    if (!(await access.may(caller, 'read', after ?? before))) throw notFound(id);
    if (after !== undefined) return json(200, await objectOf(after));
    // The cancel took effect and the response expired before this answer (its text with it).
    if (moved) return json(200, responseObject(before, statusOf('cancelled'), infoOf(id), ''));
    throw notFound(id);
  }

  /** The Response object of a job, with its output text so far. */
  async function objectOf(snap: JobSnapshot): Promise<Record<string, unknown>> {
    const error =
      snap.error === undefined ? undefined : visibleError(snap.error, snap.errorPrivate, o.exposeErrors);
    return responseObject(
      snap,
      statusOf(snap.state),
      infoOf(snap.id),
      await textOf(snap.id, snap.tokenCount),
      error,
    );
  }

  /** The text of a job's first `count` tokens (those still kept). */
  function textOf(id: string, count: number): Promise<string> {
    if (count === 0) return Promise.resolve('');
    return new Promise<string>((resolve, reject) => {
      let out = '';
      let done = false;
      const finish = (): void => {
        done = true;
        resolve(out);
      };
      const sub = registry.tokens$(id).subscribe({
        next: (ev) => {
          if (done) return;
          out += text(ev.token);
          if (ev.seq >= count - 1) finish();
        },
        // The job's end is not an error here: the text is what it made.
        error: (e: unknown) =>
          e instanceof JobFailedError || e instanceof JobCancelledError ? finish() : reject(e),
        complete: finish,
      });
      if (done) sub.unsubscribe();
    });
  }

  /** Resolves with the job's snapshot once it ended. */
  function settled(id: string): Promise<JobSnapshot> {
    return new Promise<JobSnapshot>((resolve, reject) => {
      registry.state$(id).subscribe({
        error: reject,
        complete: () =>
          registry.findJob(id).then((s) => (s === undefined ? reject(notFound(id)) : resolve(s)), reject),
      });
    });
  }

  function stream(req: HttpRequest<Raw>, snap: JobSnapshot, after: number, caller: Caller): Reply {
    const info = infoOf(snap.id);
    const id = snap.id;
    // Every event the client saw: the end's last sequence number is PRELUDE + count + 3 at most.
    if (isTerminal(snap.state) && after >= PRELUDE + snap.tokenCount + (snap.state === 'completed' ? 3 : 0))
      return { kind: 'empty', status: 204, headers: {} };
    const ticket = policy.admit(id, caller);
    const headers = { ...SSE_HEADERS };
    if (req.method === 'HEAD') {
      tracker.release(ticket);
      return { kind: 'empty', status: 200, headers };
    }
    const tokenAfter = after >= PRELUDE ? after - PRELUDE : undefined;
    const delta = deltaEncoder(id);
    return {
      kind: 'sse',
      status: 200,
      headers,
      start: (sink) => {
        // No standalone `retry:` block: OpenAI's streams carry none, and its Python client reads one as
        // an event with empty data (a JSONDecodeError before the first token).
        sink.write(preludeEvents(snap, info, after));
        const s: TokenStream<T> = new TokenStream<T>(
          sink,
          {
            encoder: {
              token: (ev) => delta(ev.seq, text(ev.token)),
              end: async (state, error, count) =>
                endEvents(
                  snap,
                  info,
                  state,
                  error,
                  count,
                  state === 'completed' ? await textOf(id, count) : '',
                  after,
                ),
            },
            maxBufferedBytes: o.maxBufferedBytes,
            errorText: (e) =>
              e instanceof JobFailedError ? visibleError(e.message, !e.expose, o.exposeErrors) : e.message,
            tokens: (jobId, from) => registry.tokens$(jobId, from === undefined ? {} : { after: from }),
            finalState: () => policy.finalState(anyRegistry, id),
            hold: (jobId) => registry.holdForReader(jobId),
            onClose: () => {
              tracker.untrack(s);
              tracker.release(ticket);
            },
          },
          id,
          tokenAfter,
        );
        tracker.track(s);
        s.start();
      },
    };
  }

  return policy.serve(handle);
}

function json(status: number, body: unknown): Answer {
  return { kind: 'json', status, headers: {}, body };
}

/**
 * The AI SDK chat routes over the registry, under the one request policy: `POST {base}` starts a chat's
 * answer (a job keyed by the chat id) and streams it, `GET {base}/{chatId}/stream` replays the chat's live
 * answer (`resumeStream()`), `DELETE {base}/{chatId}/stream` stops it wherever it runs. A preset of both
 * handlers: `createChatHandler` (Node) and `createFetchChatHandler` (fetch). Imports no `node:` module, and
 * `ai` only for its types.
 */
import type { UIMessageChunk } from 'ai';
import { InvalidArgumentError, JobFailedError, JobNotFoundError, isPublicError } from '../core/errors.js';
import type { JobRegistry } from '../core/registry.js';
import { isTerminal } from '../core/states.js';
import type { Executor, JobSnapshot } from '../core/types.js';
import type { Caller, Principal } from '../protocol/access.js';
import { resolveHandlerOptions } from '../protocol/options.js';
import { Policy, SSE_HEADERS } from '../protocol/policy.js';
import {
  checkRegistry,
  type Answer,
  type HttpRequest,
  type Protocol,
  type Reply,
} from '../protocol/protocol.js';
import { requestPath } from '../protocol/route.js';
import { HttpError } from '../protocol/status.js';
import { TokenStream } from '../protocol/stream.js';
import { CANCEL_REASON, cancelledSnapshot, toWireSnapshot, visibleError } from '../protocol/wire.js';
import type { ChatOptions, ChatRequest } from './options.js';
import { streamChat } from './source.js';
import { UI_MESSAGE_STREAM_HEADER, chatKey, isValidChatId, uiMessageEncoder } from './wire.js';

/** What a chat job carries: the executor's payload, and whose chat it answers. */
interface ChatJob<P> {
  payload: P;
  chatId: string;
  principal: Principal | undefined;
}

const RESUME_POINT = /^\d{1,15}$/;

/**
 * Builds the chat protocol, for either handler form. A second `POST` while the chat's answer is live
 * follows the registry's `keyConflict`: `'refuse'` (the default) answers `409 JOB_BUSY`, `'replace'` stops
 * the live answer and starts the new one.
 *
 * @throws InvalidArgumentError for a malformed option.
 */
export function createChatProtocol<P, Raw>(
  registry: JobRegistry<unknown, unknown>,
  options: ChatOptions<P, Raw>,
): Protocol<Raw> {
  if (typeof options?.execute !== 'function')
    throw new InvalidArgumentError('the chat routes need an execute function');
  if (options.toPayload !== undefined && typeof options.toPayload !== 'function')
    throw new InvalidArgumentError('toPayload must be a function');
  checkRegistry(registry, 'createChatHandler');
  // The policy's options, checked as every handler's; the chat's own are checked here.
  const { execute: _execute, toPayload: _toPayload, endTimeout: _endTimeout, ...shared } = options;
  const o = resolveHandlerOptions<unknown, P, Raw>({ ...shared, basePath: options.basePath ?? '/api/chat' }, [
    'notFound',
  ]);
  const base = o.base;
  const policy = new Policy<Raw>(registry, o, options, 'chat ', {
    allowHeaders: 'Accept',
    exposeHeaders: UI_MESSAGE_STREAM_HEADER,
  });
  const toPayload = options.toPayload ?? ((request: ChatRequest) => request as P);
  const execute = streamChat<ChatJob<P>>(
    (job, context) =>
      options.execute(job.payload, {
        ...context,
        chatId: job.chatId,
        ...(job.principal !== undefined ? { principal: job.principal } : {}),
      }),
    options.endTimeout === undefined ? {} : { endTimeout: options.endTimeout },
  ) as Executor<unknown, unknown>;

  async function handle(req: HttpRequest<Raw>): Promise<Reply> {
    const raw = requestPath(req.target);
    const path = raw.length > 1 && raw.endsWith('/') ? raw.slice(0, -1) : raw;
    let chatId: string | undefined;
    let allow: string[];
    if (path === base) allow = ['POST'];
    else if (path.startsWith(base + '/')) {
      const [segment, action, ...more] = path.slice(base.length + 1).split('/');
      if (action !== 'stream' || more.length > 0)
        throw new HttpError(404, 'NOT_FOUND', `job-registry: no route ${path.slice(0, 200)}`);
      chatId = decodeSegment(segment!);
      allow = ['GET', 'DELETE'];
    } else return { kind: 'next' };
    const preflight = policy.preflight(req, allow);
    if (preflight !== undefined) return preflight;
    const method = policy.checkMethod(req, allow);
    const caller = await policy.identify(req);
    const reply =
      chatId === undefined
        ? await create(req, caller)
        : method === 'DELETE'
          ? await stop(chatId, caller)
          : await resume(req, chatId, caller);
    return policy.withCors(reply, req);
  }

  async function create(req: HttpRequest<Raw>, caller: Caller): Promise<Reply> {
    policy.refuseWhileDraining();
    await policy.require(caller, 'create', 'start chats');
    const request = chatRequestOf(await req.readJson(policy.body));
    const principal = caller.principal;
    let payload: P;
    try {
      payload = toPayload(request, principal);
    } catch (e) {
      throw new HttpError(
        400,
        'INVALID_PAYLOAD',
        `job-registry: ${isPublicError(e) ? (e as Error).message : 'invalid chat request'}`,
      );
    }
    const key = keyOf(principal, request.id);
    policy.checkQuota(registry, caller);
    const job: ChatJob<P> = { payload, chatId: request.id, principal };
    const id = registry.createJob({
      payload: job,
      key,
      ...(principal !== undefined ? { owner: principal.id } : {}),
    });
    // Stored, and the key this job's (on a shared backend the store decides) before the model runs.
    await policy.publish(registry, id);
    registry.executeAndStream(id, execute);
    try {
      return stream(req, id, undefined, caller);
    } catch (e) {
      // The stream was refused (a stream limit): no answer runs on for a client that never reads it.
      registry.removeJob(id);
      throw e;
    }
  }

  /** The chat's live answer the caller may read, or `undefined` (none, or another principal's). */
  async function liveAnswer(chatId: string, caller: Caller, action: 'stream' | 'cancel') {
    const snap = await registry.activeJob(keyOf(caller.principal, chatId));
    return snap !== undefined && (await policy.may(caller, action, snap)) ? snap : undefined;
  }

  async function resume(req: HttpRequest<Raw>, chatId: string, caller: Caller): Promise<Reply> {
    const after = resumePoint(req);
    const live = await liveAnswer(chatId, caller, 'stream');
    if (live === undefined) return noContent();
    let snap: JobSnapshot;
    try {
      snap = await registry.checkReadable(live.id, after === undefined ? {} : { after });
    } catch (e) {
      // It ended and went between the two looks: no live answer.
      if (e instanceof JobNotFoundError) return noContent();
      throw e;
    }
    // The client saw the end already (its id is the token count).
    if (after !== undefined && isTerminal(snap.state) && after >= snap.tokenCount) return noContent();
    return stream(req, live.id, after, caller);
  }

  async function stop(chatId: string, caller: Caller): Promise<Reply> {
    const live = await liveAnswer(chatId, caller, 'cancel');
    if (live === undefined) return noContent();
    let moved: boolean;
    try {
      moved = await registry.cancel(live.id, CANCEL_REASON);
    } catch (e) {
      if (e instanceof JobNotFoundError) return noContent();
      throw e;
    }
    if (!moved) return noContent();
    const snap = (await registry.findJob(live.id)) ?? cancelledSnapshot(live, CANCEL_REASON);
    return { kind: 'json', status: 200, headers: {}, body: toWireSnapshot(snap, o.exposeErrors) };
  }

  function stream(req: HttpRequest<Raw>, id: string, after: number | undefined, caller: Caller): Answer {
    const ticket = policy.admit(id, caller);
    const headers = { ...SSE_HEADERS, [UI_MESSAGE_STREAM_HEADER]: 'v1' };
    if (req.method === 'HEAD') {
      policy.release(ticket);
      return { kind: 'empty', status: 200, headers };
    }
    return {
      kind: 'sse',
      status: 200,
      headers,
      start: (sink) => {
        const s: TokenStream<UIMessageChunk> = new TokenStream<UIMessageChunk>(
          sink,
          {
            encoder: uiMessageEncoder(id),
            maxBufferedBytes: o.maxBufferedBytes,
            errorText: (e) =>
              e instanceof JobFailedError ? visibleError(e.message, !e.expose, o.exposeErrors) : e.message,
            tokens: (jobId, from) =>
              (registry as JobRegistry<UIMessageChunk, unknown>).tokens$(
                jobId,
                from === undefined ? {} : { after: from },
              ),
            finalState: () => policy.finalState(registry, id),
            hold: (jobId) => registry.holdForReader(jobId),
            onClose: () => {
              policy.tracker.untrack(s);
              policy.release(ticket);
            },
          },
          id,
          after,
        );
        policy.tracker.track(s);
        s.start();
      },
    };
  }

  return policy.serve(handle);
}

/** The job key of a chat, or `400` when the principal's id and the chat id do not make one. */
function keyOf(principal: Principal | undefined, chatId: string): string {
  try {
    return chatKey(principal?.id, chatId);
  } catch (e) {
    throw new HttpError(400, 'INVALID_CHAT_ID', `job-registry: ${(e as Error).message}`);
  }
}

/** A chat id from the path, decoded and checked (`400 INVALID_CHAT_ID`). */
function decodeSegment(segment: string): string {
  let id: string;
  try {
    id = decodeURIComponent(segment);
  } catch (e) {
    throw invalidChatId(`it is not valid percent-encoding (${(e as Error).message})`);
  }
  if (!isValidChatId(id)) throw invalidChatId('');
  return id;
}

function invalidChatId(why: string): HttpError {
  return new HttpError(
    400,
    'INVALID_CHAT_ID',
    `job-registry: malformed chat id${why === '' ? '' : `: ${why}`}; a chat id is 1-128 letters, digits, '.', '_', ':' or '-'`,
  );
}

/** Checks a POSTed body as the AI SDK's chat transport sends it. @throws HttpError 400 */
function chatRequestOf(body: unknown): ChatRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw invalidPayload(
      'the body must be a JSON object { "id", "messages", ... } as the AI SDK chat transport sends it',
    );
  const b = body as Record<string, unknown>;
  if (b.id === undefined) throw invalidPayload('the body has no chat "id"');
  if (!isValidChatId(b.id)) throw invalidChatId('');
  if (
    !Array.isArray(b.messages) ||
    b.messages.some((m) => m === null || typeof m !== 'object' || Array.isArray(m))
  )
    throw invalidPayload('"messages" must be an array of UI messages');
  if (b.trigger !== undefined && b.trigger !== 'submit-message' && b.trigger !== 'regenerate-message')
    throw invalidPayload(`"trigger" must be 'submit-message' or 'regenerate-message'`);
  if (b.messageId !== undefined && b.messageId !== null && typeof b.messageId !== 'string')
    throw invalidPayload('"messageId" must be a string');
  return b as ChatRequest;
}

function invalidPayload(why: string): HttpError {
  return new HttpError(400, 'INVALID_PAYLOAD', `job-registry: ${why}`);
}

/** `Last-Event-ID` (a chunk's seq), or `undefined` when absent or empty. @throws HttpError 400 */
function resumePoint<Raw>(req: HttpRequest<Raw>): number | undefined {
  const raw = (req.header('last-event-id') ?? '').trim();
  if (raw === '') return undefined;
  if (!RESUME_POINT.test(raw))
    throw new HttpError(
      400,
      'INVALID_RESUME_POINT',
      'job-registry: Last-Event-ID must be a chunk id (a whole number >= 0)',
    );
  return Number(raw);
}

function noContent(): Answer {
  return { kind: 'empty', status: 204, headers: {} };
}

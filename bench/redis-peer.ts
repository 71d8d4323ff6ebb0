/**
 * One side (producer or reader) of the Redis benchmark, in its own process. Systems:
 * - ours: JobRegistry with redisBackend (writes pipelined per tick; one XREAD BLOCK reader per process);
 * - bare: ioredis, one pipeline of XADDs per tick, the reader an XREAD BLOCK loop;
 * - resumable: the resumable-stream package (ioredis), one token per chunk.
 * The producer emits K tokens, B per tick.
 */
import { Redis } from 'ioredis';
import { JobRegistry } from '../src/core/index.js';
import { redisBackend } from '../src/redis/index.js';
import { once, runPeer, send } from './ipc.js';

const [role, system, url, prefix] = process.argv.slice(2) as [string, string, string, string];
const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const token = (i: number): string => `tok${String(i).padStart(8, '0')}|`;
const TOKEN_LEN = token(0).length;

async function resumableContext() {
  const { createResumableStreamContext } = await import('resumable-stream/ioredis');
  return createResumableStreamContext({
    waitUntil: null,
    keyPrefix: `${prefix}rs`,
    publisher: new Redis(url),
    subscriber: new Redis(url),
  });
}

async function producer(): Promise<void> {
  const { k, batch, id: given } = await once<{ k: number; batch: number; id: string }>('start');
  if (system === 'ours') {
    const r = new JobRegistry<string>({ backend: redisBackend({ url, prefix }) });
    await r.ready();
    const id = r.createJob();
    await r.flush();
    send({ type: 'id', id });
    await once('go');
    for (let i = 0; i < k;) {
      for (const end = Math.min(k, i + batch); i < end; i++) r.emit(id, token(i));
      await tick();
    }
    r.updateState(id, 'completed');
    await r.flush();
    send({ type: 'sent' });
    await once('stop');
    await r.dispose();
  } else if (system === 'bare') {
    const redis = new Redis(url);
    const key = `${prefix}bare:${given}`;
    send({ type: 'id', id: given });
    await once('go');
    let seq = 0;
    for (let i = 0; i < k;) {
      const p = redis.pipeline();
      for (const end = Math.min(k, i + batch); i < end; i++) p.xadd(key, `0-${++seq}`, 't', token(i));
      void p.exec();
      await tick();
    }
    await redis.xadd(key, '*', 'end', 'completed');
    send({ type: 'sent' });
    await once('stop');
    redis.disconnect();
  } else {
    const ctx = await resumableContext();
    let go!: () => void;
    const started = new Promise<void>((r) => (go = r));
    const stream = await ctx.resumableStream(
      given,
      () =>
        new ReadableStream<string>({
          async start(controller) {
            await started;
            for (let i = 0; i < k;) {
              for (const end = Math.min(k, i + batch); i < end; i++) controller.enqueue(token(i));
              await tick();
            }
            controller.close();
          },
        }),
    );
    // The creator must drain its own copy of the stream.
    const drained = (async () => {
      const reader = stream!.getReader();
      while (!(await reader.read()).done);
    })();
    send({ type: 'id', id: given });
    await once('go');
    go();
    await drained;
    send({ type: 'sent' });
    await once('stop');
    process.exit(0);
  }
}

async function reader(): Promise<void> {
  const { id, k } = await once<{ id: string; k: number }>('read');
  let first = 0;
  let count = 0;
  const finish = (): void =>
    send({ type: 'result', tokens: count, seconds: (performance.now() - first) / 1000 });
  if (system === 'ours') {
    const r = new JobRegistry<string>({ backend: redisBackend({ url, prefix }) });
    await r.ready();
    r.tokens$(id).subscribe({
      next: () => {
        if (count++ === 0) first = performance.now();
      },
      complete: finish,
      error: (e: Error) => send({ type: 'error', message: e.message }),
    });
    send({ type: 'ready' });
    await once('stop');
    await r.dispose();
  } else if (system === 'bare') {
    const redis = new Redis(url);
    const key = `${prefix}bare:${id}`;
    send({ type: 'ready' });
    let cursor = '0-0';
    for (;;) {
      const res = (await redis.xread('COUNT', 1000, 'BLOCK', 5000, 'STREAMS', key, cursor)) as Array<
        [string, Array<[string, string[]]>]
      > | null;
      if (res === null) continue;
      let ended = false;
      for (const [eid, fields] of res[0]![1]) {
        cursor = eid;
        if (fields[0] === 'end') ended = true;
        else if (count++ === 0) first = performance.now();
      }
      if (ended) break;
    }
    finish();
    await once('stop');
    redis.disconnect();
  } else {
    const ctx = await resumableContext();
    const stream = await ctx.resumeExistingStream(id);
    if (!stream) throw new Error('no stream to resume');
    send({ type: 'ready' });
    const r = stream.getReader();
    let chars = 0;
    for (;;) {
      const { done, value } = await r.read();
      if (done) break;
      if (chars === 0) first = performance.now();
      chars += value.length;
    }
    count = Math.round(chars / TOKEN_LEN);
    if (count !== k) send({ type: 'error', message: `resumable-stream delivered ${count} of ${k}` });
    finish();
    await once('stop');
    process.exit(0);
  }
}

runPeer(role === 'producer' ? producer : reader);

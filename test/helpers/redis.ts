import { Redis } from 'ioredis';
import { JobRegistry, type JobRegistryOptions } from '../../src/core/index.js';
import { redisBackend, type BackendLogger, type RedisBackendOptions } from '../../src/redis/index.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Whether Redis answers. In CI (CI=true) it must: a missing Redis fails the suite instead of skipping it. */
export async function haveRedis(): Promise<boolean> {
  const r = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
    return true;
  } catch {
    if (process.env.CI === 'true')
      throw new Error(`Redis is required in CI but ${REDIS_URL} does not answer`);
    console.warn(`SKIPPING Redis tests: no Redis at ${REDIS_URL} (start one: redis-server --port 6379)`);
    return false;
  } finally {
    r.disconnect();
  }
}

/** A fresh key prefix for one test file. */
export function testPrefix(name: string): string {
  return `jrtest:${name}:${process.pid}:${Math.random().toString(36).slice(2, 8)}:`;
}

/** Deletes every key under a prefix. */
export async function dropPrefix(prefix: string): Promise<void> {
  const r = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await r.del(...keys);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}

/**
 * The connections a Redis has, as `CLIENT LIST` shows them: one record of fields (`name`, `user`, `cmd`,
 * `flags`, `qbuf`, …) per connection. A connection blocked in Redis (a blocking read, or a write held by
 * `CLIENT PAUSE WRITE`) has `b` in its flags and that command in `cmd`.
 */
export async function clientList(admin: Redis): Promise<Array<Record<string, string>>> {
  const text = (await admin.call('CLIENT', 'LIST')) as string;
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) =>
      Object.fromEntries(
        line
          .trim()
          .split(' ')
          .map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)]),
      ),
    );
}

/** A logger that keeps the backend's expected warnings out of the test output. */
export const quietLogger: BackendLogger = { warn: () => undefined, error: () => undefined };

/**
 * Registries on Redis under one prefix for a test file, with `defaults` for every backend, and an admin
 * connection; `close()` disposes them all and drops the prefix.
 */
export function registriesOn(
  prefix: string,
  defaults: Omit<RedisBackendOptions, 'url' | 'prefix'> = {},
): {
  admin: Redis;
  make<T = string>(
    backend?: Omit<RedisBackendOptions, 'url' | 'prefix'>,
    registry?: JobRegistryOptions,
  ): JobRegistry<T>;
  close(): Promise<void>;
} {
  const made: Array<JobRegistry<unknown>> = [];
  const admin = new Redis(REDIS_URL);
  return {
    admin,
    make<T = string>(backend = {}, registry: JobRegistryOptions = {}): JobRegistry<T> {
      const r = new JobRegistry<T>({
        ...registry,
        backend: redisBackend({ url: REDIS_URL, prefix, ...defaults, ...backend }),
      });
      made.push(r as JobRegistry<unknown>);
      return r;
    },
    async close() {
      await Promise.all(made.map((r) => r.dispose()));
      await dropPrefix(prefix);
      admin.disconnect();
    },
  };
}

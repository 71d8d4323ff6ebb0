import type { JobSnapshot } from '../core/types.js';
import { isValidJobId } from '../core/ids.js';
import { decodeSnapshot } from './codec.js';
import type { Connection, Pipeline } from './connection.js';
import { seqOf, type Keys } from './keys.js';

type Entries = Array<[string, string[]]>;

/**
 * Runs `add` for each item in one pipeline per group (one per node on a cluster) on the command or the
 * read connection, and returns, per item, the replies of the `perItem` commands it added, in order.
 * Throws the first error reply.
 */
export async function perGroup<I>(
  conn: Connection,
  items: I[],
  shardOf: (item: I) => number,
  perItem: number,
  add: (pipe: Pipeline, item: I, shard: number) => void,
  via: 'cmd' | 'reads' = 'cmd',
): Promise<unknown[][]> {
  const byGroup = new Map<number, number[]>();
  items.forEach((item, i) => {
    const g = conn.groupOf(shardOf(item), via === 'reads' ? conn.reads : conn.cmd);
    let list = byGroup.get(g);
    if (list === undefined) byGroup.set(g, (list = []));
    list.push(i);
  });
  const out: unknown[][] = new Array(items.length);
  await Promise.all(
    [...byGroup.values()].map(async (indexes) => {
      const pipe = via === 'reads' ? conn.readPipeline() : conn.pipeline();
      for (const i of indexes) add(pipe, items[i]!, shardOf(items[i]!));
      const results = (await pipe.exec()) ?? [];
      indexes.forEach((i, n) => {
        const replies: unknown[] = [];
        for (let k = 0; k < perItem; k++) {
          const [err, reply] = results[n * perItem + k] ?? [new Error('no reply'), null];
          if (err !== null) throw err;
          replies.push(reply);
        }
        out[i] = replies;
      });
    }),
  );
  return out;
}

/** Snapshots of jobs as Redis holds them: `undefined` when missing, `'corrupt'` when not ours. */
export async function readSnapshots(
  conn: Connection,
  keys: Keys,
  ids: string[],
): Promise<Array<{ snap: JobSnapshot | undefined | 'corrupt'; owner: string | undefined }>> {
  const replies = await perGroup(
    conn,
    ids,
    (id) => keys.shardOf(id),
    2,
    (pipe, id, shard) => {
      pipe.hgetall(keys.meta(id, shard));
      pipe.xrevrange(keys.tokens(id, shard), '+', '-', 'COUNT', 2);
    },
    'reads',
  );
  return ids.map((id, i) => {
    const [meta, last] = replies[i] as [Record<string, string>, Entries];
    return { snap: decodeSnapshot(id, meta, last, seqOf), owner: meta.owner };
  });
}

/** Ids in the job index of every shard, oldest first, and the entries there that are not job ids (with their key). */
export async function indexedIds(
  conn: Connection,
  keys: Keys,
): Promise<{ ids: string[]; foreign: Array<{ key: string; entry: string }> }> {
  const shards = Array.from({ length: keys.shards }, (_, i) => i);
  const replies = await perGroup(
    conn,
    shards,
    (s) => s,
    1,
    (pipe, shard) => {
      pipe.zrange(keys.jobs(shard), 0, -1, 'WITHSCORES');
    },
    'reads',
  );
  const all: Array<[string, number]> = [];
  const foreign: Array<{ key: string; entry: string }> = [];
  (replies as [string[]][]).forEach(([flat], shard) => {
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const id = flat[i]!;
      if (isValidJobId(id)) all.push([id, Number(flat[i + 1])]);
      else foreign.push({ key: keys.jobs(shard), entry: id });
    }
  });
  all.sort((a, b) => a[1] - b[1]);
  return { ids: all.map(([id]) => id), foreign };
}

/** The oldest seq a reader can still get for a job, or `undefined` when the job is unknown. */
export async function firstKept(conn: Connection, keys: Keys, jobId: string): Promise<number | undefined> {
  const [[first]] = (await perGroup(
    conn,
    [jobId],
    (id) => keys.shardOf(id),
    1,
    (pipe, id, shard) => {
      pipe.xrange(keys.tokens(id, shard), '-', '+', 'COUNT', 1);
    },
    'reads',
  )) as [[Entries]];
  const seq = first.length > 0 ? seqOf(first[0]![0]) : undefined;
  if (seq !== undefined) return seq;
  // No token kept (none yet, or only the end entry): the next seq is the first one a reader can get.
  const [{ snap }] = await readSnapshots(conn, keys, [jobId]);
  return snap === undefined || snap === 'corrupt' ? undefined : snap.tokenCount;
}

import type { Connection } from './connection.js';
import type { Keys } from './keys.js';

/** Creates between two looks at which master serves each shard (the slot table changes rarely). */
const LOOK_EVERY = 256;

/**
 * Draws at most per job. A master that serves 1 of 8 shards is missed by all of them about once in 4,500
 * creates; that job goes where its last draw falls. Draws that all miss can also mean the masters
 * changed since the last look (a failover, a reshard, the slot table first loaded): look again.
 */
const DRAWS_MAX = 64;

/**
 * Spreads a process's new jobs over a Redis Cluster's masters in turn. A job's shard comes from a hash
 * of its id, so jobs fall on masters at random: a few hundred jobs leave one master with a good share
 * more than its third, and shards that do not divide among the masters (8 on 3) add to that. Here the
 * id of each new job without a key is drawn again until its shard is served by the next master in turn
 * (about as many draws as there are masters). Ids stay opaque uuids and the key layout is unchanged, so
 * processes need not agree on anything: a slot that moves only shifts where later jobs go.
 */
export class Spread {
  /** The masters (ioredis's node groups) serving the shards, each once, as last looked at. */
  private masters: number[] = [];
  private creates = 0;
  private turn = 0;

  constructor(
    private readonly conn: Connection,
    private readonly keys: Keys,
  ) {}

  /** An id for a new job without a key: the first draw on a single Redis. */
  idFor(draw: () => string): string {
    if (!this.conn.cluster) return draw();
    if (this.creates++ % LOOK_EVERY === 0) this.look();
    if (this.masters.length < 2) return draw();
    const master = this.masters[this.turn++ % this.masters.length]!;
    for (let i = 1; i < DRAWS_MAX; i++) {
      const id = draw();
      if (this.conn.groupOf(this.keys.shardOf(id)) === master) return id;
    }
    this.look();
    return draw();
  }

  private look(): void {
    const seen = new Set<number>();
    for (let s = 0; s < this.keys.shards; s++) seen.add(this.conn.groupOf(s));
    this.masters = [...seen];
  }
}

/**
 * Redis Cluster hash slots (CRC16/XMODEM of the key's hash tag, mod 16384), used to pick shard tags that
 * spread evenly over the slot space, so shards land on every master of a cluster.
 */
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let j = 0; j < 8; j++) c = c & 0x8000 ? ((c << 1) ^ 0x1021) & 0xffff : (c << 1) & 0xffff;
  TABLE[i] = c;
}

export const SLOTS = 16384;

/** The cluster slot of a hash tag (the text between `{` and `}`), ASCII only. */
export function slotOf(tag: string): number {
  let crc = 0;
  for (let i = 0; i < tag.length; i++)
    crc = ((crc << 8) & 0xffff) ^ TABLE[((crc >> 8) ^ tag.charCodeAt(i)) & 0xff]!;
  return crc % SLOTS;
}

/**
 * One hash tag per shard, the k-th one in the k-th of `count` equal slot ranges. Deterministic, so every
 * process that uses the same `count` computes the same tags.
 */
export function shardTags(count: number): string[] {
  const tags: string[] = [];
  for (let k = 0; k < count; k++) {
    const lo = Math.floor((k * SLOTS) / count);
    const hi = Math.floor(((k + 1) * SLOTS) / count);
    for (let i = 0; ; i++) {
      const tag = `s${k}.${i}`;
      const slot = slotOf(tag);
      if (slot >= lo && slot < hi) {
        tags.push(tag);
        break;
      }
    }
  }
  return tags;
}

/** FNV-1a of a job id: which shard holds it. */
export function shardIndex(id: string, count: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193);
  return (h >>> 0) % count;
}

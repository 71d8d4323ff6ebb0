/**
 * A small seeded PRNG (xmur3 hash + mulberry32). Each part of the chaos run draws from its own stream
 * (`fork(label)`), so the fault schedule stays the same for one seed however the workload interleaves.
 */
function xmur3(text: string): () => number {
  let h = 1779033703 ^ text.length;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 3432918353);
    h = (h << 13) | (h >>> 19);
  }
  return () => {
    h = Math.imul(h ^ (h >>> 16), 2246822507);
    h = Math.imul(h ^ (h >>> 13), 3266489909);
    return (h ^= h >>> 16) >>> 0;
  };
}

export class Rng {
  private state: number;

  constructor(private readonly seedText: string) {
    this.state = xmur3(seedText)();
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** An integer in [lo, hi] drawn log-uniformly (small values as likely per decade as large ones). */
  logInt(lo: number, hi: number): number {
    const v = Math.exp(Math.log(lo) + this.next() * (Math.log(hi + 1) - Math.log(lo)));
    return Math.min(hi, Math.max(lo, Math.floor(v)));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.pick of an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** A choice by weight: `{ a: 3, b: 1 }` gives `a` three times as often as `b`. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = (Object.entries(weights) as Array<[K, number]>).filter(([, w]) => w > 0);
    const total = entries.reduce((s, [, w]) => s + w, 0);
    let x = this.next() * total;
    for (const [k, w] of entries) {
      if ((x -= w) < 0) return k;
    }
    return entries[entries.length - 1]![0];
  }

  /** An independent stream for one purpose, reproducible from the same seed. */
  fork(label: string): Rng {
    return new Rng(`${this.seedText}/${label}`);
  }
}

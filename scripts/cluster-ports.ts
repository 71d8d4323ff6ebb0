/**
 * A free base port for a private Redis Cluster started with scripts/redis-cluster.sh (its nodes listen on
 * base .. base + 5, their cluster bus on base + 10000 .. base + 10005). Bases are drawn below the kernel's
 * ephemeral port range, so that no outgoing connection of a busy test or bench run holds one of the
 * twelve ports by chance; a port some server holds is found by trying to listen on it, and another base
 * is drawn.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const LOWEST = 10_000;
const BUS_OFFSET = 10_000;
const NODES = 6;

/** The first port of the ephemeral range (Linux's default when it cannot be read). */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > LOWEST + BUS_OFFSET + NODES ? low : 32_768;
  } catch {
    // Not Linux: its default range starts higher than Linux's.
    return 32_768;
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * Draws bases until one whose twelve ports are free; each busy base drawn is reported to `busy`.
 * @throws Error when `attempts` draws found none.
 */
export async function freeClusterBase(attempts: number, busy?: (base: number) => void): Promise<number> {
  const top = ephemeralLow() - BUS_OFFSET - NODES;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const base = LOWEST + Math.floor(Math.random() * (top - LOWEST));
    let free = true;
    for (let i = 0; i < NODES && free; i++)
      free = (await portFree(base + i)) && (await portFree(base + BUS_OFFSET + i));
    if (free) return base;
    busy?.(base);
  }
  throw new Error(`no free base port for a private Redis Cluster in ${attempts} draws`);
}

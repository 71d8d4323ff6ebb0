import fc from 'fast-check';
import { Observable } from 'rxjs';
import { TokenChannel } from '../../src/core/channel.js';
import type { TokenEvent } from '../../src/core/types.js';

type Step =
  | { kind: 'append' }
  | { kind: 'read'; after: number | null; echo: boolean }
  | { kind: 'detach'; which: number }
  | { kind: 'close' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'append' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      after: fc.option(fc.nat(30)),
      echo: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('detach' as const), which: fc.nat(10) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'close' as const }) },
);

/** Attaches a reader to a channel through a real rxjs Subscriber. */
function attach<T>(
  channel: TokenChannel<T>,
  after: number | undefined,
  onNext: (ev: TokenEvent<T>) => void,
  onEnd: (how: string) => void,
): () => void {
  let detach = (): void => undefined;
  const sub = new Observable<TokenEvent<T>>((subscriber) => {
    const reader = channel.read(subscriber, after);
    if (reader !== undefined) detach = () => void channel.detach(reader);
  }).subscribe({
    next: onNext,
    complete: () => onEnd('completed'),
    error: (e: { code?: string }) => onEnd(e.code ?? 'error'),
  });
  return () => {
    sub.unsubscribe();
    detach();
  };
}

test.each([Infinity, 5])(
  'a token channel gives every reader each kept seq once, in order, also when readers append from their callbacks (limit %s)',
  (limit) => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const channel = new TokenChannel<number>('job-x', limit);
        const readers: Array<{
          from: number;
          seen: number[];
          end?: string;
          stop: () => void;
          cut: boolean;
          expired: boolean;
        }> = [];
        // Each echoing reader appends once from inside its callback: nested deliveries must queue.
        let echoes = 0;
        for (const s of steps) {
          if (s.kind === 'append' && !channel.closed) channel.append(channel.nextSeq);
          else if (s.kind === 'close') channel.close();
          else if (s.kind === 'detach' && readers.length > 0) {
            const r = readers[s.which % readers.length]!;
            r.stop();
            r.cut = true;
          } else if (s.kind === 'read') {
            const after = s.after ?? undefined;
            const first = channel.firstKept();
            const r = {
              from: after === undefined ? first : after + 1,
              seen: [] as number[],
              cut: false,
              expired: after !== undefined && after + 1 < first,
              stop: () => undefined as void,
            } as (typeof readers)[number];
            let echoed = !s.echo;
            r.stop = attach(
              channel,
              after,
              (ev) => {
                r.seen.push(ev.seq);
                expect(ev.token).toBe(ev.seq);
                if (!echoed && !channel.closed && echoes < 20) {
                  echoed = true;
                  echoes++;
                  channel.append(channel.nextSeq);
                }
              },
              (how) => (r.end = how),
            );
            readers.push(r);
          }
        }
        channel.close();
        for (const r of readers) {
          if (r.expired) {
            expect(r.end).toBe('REPLAY_EXPIRED');
            continue;
          }
          r.seen.forEach((seq, i) => expect(seq).toBe(r.from + i));
          if (r.end === 'REPLAY_EXPIRED') {
            // Overtaken during its replay: appends made from the callbacks (its own, or other readers'
            // in answer to them) pushed the next seq it needed out of the bounded buffer. Allowed only
            // when that seq is really gone; it is told, never handed a gap.
            expect(limit).not.toBe(Infinity);
            expect(channel.firstKept()).toBeGreaterThan(r.from + r.seen.length);
            continue;
          }
          if (!r.cut) {
            expect(r.seen.length).toBe(Math.max(0, channel.nextSeq - r.from));
            expect(r.end).toBe('completed');
          }
        }
        expect(channel.readers).toHaveLength(0);
      }),
      {
        numRuns: 300,
        // Found by the property: a reader replaying from 0 echoes seq 5, a live reader echoes seq 6 in
        // answer, and with 5 kept the replaying reader's seq 1 is gone.
        examples: [
          [
            [
              { kind: 'append' },
              { kind: 'append' },
              { kind: 'append' },
              { kind: 'append' },
              { kind: 'read', after: 4, echo: true },
              { kind: 'append' },
              { kind: 'read', after: null, echo: true },
            ],
          ],
        ],
      },
    );
  },
);

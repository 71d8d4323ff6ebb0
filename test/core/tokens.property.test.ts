import fc from 'fast-check';
import { JobRegistry, type TokenEvent } from '../../src/core/index.js';

type Step =
  | { kind: 'emit' }
  | { kind: 'subscribe'; after: number | null }
  | { kind: 'unsubscribe'; which: number }
  | { kind: 'end'; how: 'completed' | 'failed' | 'cancelled' };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'emit' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('subscribe' as const), after: fc.option(fc.nat(40)) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unsubscribe' as const), which: fc.nat(20) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('end' as const),
      how: fc.constantFrom('completed' as const, 'failed' as const, 'cancelled' as const),
    }),
  },
);

test.each([Infinity, 8])(
  'tokens$ gives replay then live, no gap, no duplicate, for any interleaving (replayLimit %s)',
  (limit) => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), (steps) => {
        const r = new JobRegistry<number>({ replayLimit: limit });
        const id = r.createJob();
        let emitted = 0;
        let ended: string | undefined;
        const readers: Array<{
          from: number;
          seen: TokenEvent<number>[];
          end?: string | undefined;
          sub: { unsubscribe(): void };
          cut: boolean;
          expired: boolean;
          ahead: boolean;
        }> = [];
        for (const s of steps) {
          if (s.kind === 'emit' && ended === undefined) r.emit(id, emitted++ * 10);
          else if (s.kind === 'end' && ended === undefined) {
            r.updateState(id, s.how, s.how === 'completed' ? undefined : 'why');
            ended = s.how;
          } else if (s.kind === 'subscribe') {
            const after = s.after ?? undefined;
            const firstKept = limit === Infinity ? 0 : Math.max(0, emitted - limit);
            const reader = {
              from: after === undefined ? firstKept : after + 1,
              seen: [] as TokenEvent<number>[],
              cut: false,
              expired: false,
              // Past a live job's last seq, or past a terminal job's end event (id = token count).
              // Past a failed or cancelled job's end the reader gets that end (no RESUME_AHEAD).
              ahead:
                after !== undefined &&
                after >= emitted &&
                ended !== 'failed' &&
                ended !== 'cancelled' &&
                !(ended === 'completed' && after === emitted),
              end: undefined as string | undefined,
              sub: { unsubscribe() {} },
            };
            reader.sub = r.tokens$(id, after === undefined ? {} : { after }).subscribe({
              next: (v) => reader.seen.push(v),
              complete: () => (reader.end = 'completed'),
              error: (e: { code: string }) => (reader.end = e.code),
            });
            if (after !== undefined && after + 1 < firstKept) reader.expired = true;
            readers.push(reader);
          } else if (s.kind === 'unsubscribe' && readers.length > 0) {
            const reader = readers[s.which % readers.length]!;
            reader.sub.unsubscribe();
            reader.cut = true;
          }
        }
        for (const reader of readers) {
          if (reader.expired) {
            expect(reader.end).toBe('REPLAY_EXPIRED');
            expect(reader.seen).toEqual([]);
            continue;
          }
          if (reader.ahead) {
            expect(reader.end).toBe('RESUME_AHEAD');
            expect(reader.seen).toEqual([]);
            continue;
          }
          const seqs = reader.seen.map((v) => v.seq);
          // contiguous from its start point, each token the one emitted at that seq
          seqs.forEach((seq, i) => expect(seq).toBe(reader.from + i));
          reader.seen.forEach((v) => expect(v.token).toBe(v.seq * 10));
          if (!reader.cut) {
            expect(seqs.length).toBe(Math.max(0, emitted - reader.from));
            const want =
              ended === undefined
                ? undefined
                : ended === 'completed'
                  ? 'completed'
                  : ended === 'failed'
                    ? 'JOB_FAILED'
                    : 'JOB_CANCELLED';
            expect(reader.end).toBe(want);
          }
        }
        void r.dispose();
      }),
      { numRuns: 300 },
    );
  },
);

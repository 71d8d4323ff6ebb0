/**
 * A console "dashboard" built only from the registry's Observables: it prints every state change and a
 * live count of running jobs, while a few simulated jobs run. Run: npx tsx examples/console-dashboard.ts
 */
import { filter, map, scan, startWith, distinctUntilChanged, interval, take } from 'rxjs';
import { JobRegistry } from '../src/core/index.js';

const registry = new JobRegistry<string, { words: string[] }>({ retention: { seconds: 1 } });

// Each state change, as one line.
registry.events$
  .pipe(filter((e) => e.type === 'stateChanged'))
  .subscribe((e) =>
    console.log(
      `${e.at.toFormat('HH:mm:ss.SSS')}  ${e.jobId.slice(0, 12)}  ${e.from} -> ${e.to}${e.error ? ` (${e.error})` : ''}`,
    ),
  );

// A live count of running jobs, folded from the same events.
registry.events$
  .pipe(
    scan((running, e) => {
      if (e.type !== 'stateChanged') return running;
      return running + (e.to === 'running' ? 1 : 0) - (e.from === 'running' ? 1 : 0);
    }, 0),
    startWith(0),
    distinctUntilChanged(),
    map((n) => `running jobs: ${n}`),
  )
  .subscribe((line) => console.log(`                           ${line}`));

// Five jobs that emit their words at different speeds; one fails half-way.
for (let i = 0; i < 5; i++) {
  const id = registry.createJob({ payload: { words: `job ${i} says hello to the console`.split(' ') } });
  registry
    .executeAndStream(id, (payload) =>
      interval(20 + 15 * i).pipe(
        take(payload!.words.length),
        map((k) => {
          if (i === 3 && k === 3) throw new Error('simulated failure');
          return payload!.words[k]!;
        }),
      ),
    )
    .subscribe({ error: () => undefined });
}

// Print the tokens of job 0 as they stream, then exit when every job is gone.
registry
  .tokens$(registry.jobIds()[0]!)
  .subscribe(({ seq, token }) => console.log(`  token #${seq}: ${token}`));
registry.events$.pipe(filter(() => registry.jobCount() === 0)).subscribe(() => void registry.dispose());

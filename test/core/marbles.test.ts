import { map, mergeMap } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { JobCancelledError, JobFailedError, JobRegistry } from '../../src/core/index.js';

const scheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

test('tokens$ follows its source frame by frame and completes with it', () => {
  scheduler().run(({ cold, expectObservable }) => {
    const r = new JobRegistry<string>();
    const id = r.createJob();
    r.setTokenSource(id, cold('a-b--c|'));
    expectObservable(r.tokens$(id).pipe(map((e) => `${e.token}${e.seq}`))).toBe('a-b--c|', {
      a: 'a0',
      b: 'b1',
      c: 'c2',
    });
  });
});

test('a late reader gets the replay at once, then the live tail', () => {
  scheduler().run(({ cold, expectObservable }) => {
    const r = new JobRegistry<string>();
    const id = r.createJob();
    r.setTokenSource(id, cold('a-b-----c-|'));
    // Subscribe at frame 4, after a and b: both arrive together, then c live.
    const late = cold('----x|').pipe(
      mergeMap(() => r.tokens$(id)),
      map((e) => e.token),
    );
    expectObservable(late).toBe('----(ab)c-|');
  });
});

test('failure and cancellation end the stream in the frame they happen', () => {
  scheduler().run(({ cold, expectObservable }) => {
    const r = new JobRegistry<string>();
    const failing = r.createJob();
    r.setTokenSource(failing, cold('a--#', undefined, new Error('boom')));
    expectObservable(r.tokens$(failing).pipe(map((e) => e.token))).toBe(
      'a--#',
      undefined,
      new JobFailedError(failing, 'boom'),
    );
    const cancelled = r.createJob();
    r.setTokenSource(cancelled, cold('a-b-c-d'));
    cold('---x|').subscribe(() => void r.cancel(cancelled, 'stop'));
    expectObservable(r.tokens$(cancelled).pipe(map((e) => e.token))).toBe(
      'a-b#',
      undefined,
      new JobCancelledError(cancelled, 'stop'),
    );
  });
});

/** Keyed jobs: at most one live job per key, found by `activeJob(key)`; the key in snapshots and events. */
import {
  InvalidArgumentError,
  JobBusyError,
  JobRegistry,
  memoryBackend,
  type RegistryEvent,
} from '../../src/core/index.js';

test('a key names at most one live job: a second is refused with JobBusyError until the first ends', async () => {
  const r = new JobRegistry<string>();
  const events: RegistryEvent[] = [];
  r.events$.subscribe((e) => events.push(e));
  const first = r.createJob({ key: 'chat-1' });
  expect(r.getJob(first)?.key).toBe('chat-1');
  expect(events[0]).toMatchObject({ type: 'created', jobId: first, key: 'chat-1' });
  expect((await r.activeJob('chat-1'))?.id).toBe(first);
  expect(await r.activeJob('chat-2')).toBeUndefined();
  let refused: unknown;
  try {
    r.createJob({ key: 'chat-1' });
  } catch (e) {
    refused = e;
  }
  expect(refused).toBeInstanceOf(JobBusyError);
  expect(refused).toMatchObject({ code: 'JOB_BUSY', key: 'chat-1', jobId: first });
  // Nothing half-made: the refused job does not exist.
  expect(r.jobCount()).toBe(1);
  // Another key is free; the first key is free again once its job ended.
  r.createJob({ key: 'chat-2' });
  r.emit(first, 'a');
  r.updateState(first, 'completed');
  expect(await r.activeJob('chat-1')).toBeUndefined();
  expect(r.getJob(first)?.key).toBe('chat-1');
  const second = r.createJob({ key: 'chat-1' });
  expect((await r.activeJob('chat-1'))?.id).toBe(second);
  r.removeJob(second);
  expect(await r.activeJob('chat-1')).toBeUndefined();
  await r.dispose();
});

test("keyConflict: 'replace' cancels the live job of the key and makes the new one its live job", async () => {
  const r = new JobRegistry<string>({ keyConflict: 'replace' });
  const first = r.createJob({ key: 'chat-1' });
  r.emit(first, 'a');
  const second = r.createJob({ key: 'chat-1' });
  expect(r.getJob(first)).toMatchObject({ state: 'cancelled', error: 'replaced by a newer job of its key' });
  expect((await r.activeJob('chat-1'))?.id).toBe(second);
  await r.dispose();
});

test('a malformed key or keyConflict is refused with a clear error; a shared backend that keeps no keys refuses them loudly', async () => {
  const r = new JobRegistry<string>();
  expect(() => r.createJob({ key: '' })).toThrow(InvalidArgumentError);
  expect(() => r.createJob({ key: 'x'.repeat(257) })).toThrow(/1 to 256 characters/);
  await expect(r.activeJob(5 as never)).rejects.toThrow(/1 to 256 characters/);
  expect(r.jobCount()).toBe(0);
  expect(() => new JobRegistry({ keyConflict: 'overwrite' as never })).toThrow(/'refuse' or 'replace'/);
  await r.dispose();
  // A backend shared between processes without jobOfKey (its hooks do nothing here): keys are refused,
  // not kept per process.
  const shared = new JobRegistry<string>({
    backend: { ...memoryBackend(), name: 'shared-test', shared: true },
  });
  expect(() => shared.createJob({ key: 'chat-1' })).toThrow(
    /the shared-test backend does not keep job keys across processes/,
  );
  expect(shared.jobCount()).toBe(0);
  await shared.dispose();
});

test('a job replaced by key: the new job holds the key before any event of the swap is published', async () => {
  const r = new JobRegistry<string>({ keyConflict: 'replace' });
  const first = r.createJob({ key: 'chat-1' });
  const seen: Array<string | undefined> = [];
  r.events$.subscribe(() => void r.activeJob('chat-1').then((s) => seen.push(s?.id)));
  const second = r.createJob({ key: 'chat-1' });
  await Promise.resolve();
  await Promise.resolve();
  // The created event of the second job and the cancel of the first: each saw the second as the key's job.
  expect(seen).toEqual([second, second]);
  expect(r.getJobState(first)).toBe('cancelled');
  await r.dispose();
});

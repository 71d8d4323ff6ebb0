import { Registry } from 'prom-client';
import { JobRegistry } from '../src/core/index.js';
import { registryMetrics } from '../src/metrics/index.js';

const value = (text: string, line: string): number => {
  const m = text.split('\n').find((l) => l.startsWith(line + ' '));
  if (m === undefined) throw new Error(`no metric line '${line}' in:\n${text}`);
  return Number(m.slice(line.length + 1));
};

test('a scrape shows jobs by state, and the token and job counters moving', async () => {
  const r = new JobRegistry<string>();
  const streams = { connections: 3 };
  const m = registryMetrics(r as JobRegistry<unknown, unknown>, { handlers: [streams] });
  const a = r.createJob();
  const b = r.createJob();
  for (let i = 0; i < 5; i++) r.emit(a, 't');
  r.updateState(b, 'failed', 'x');
  let text = await m.metrics();
  expect(m.contentType).toMatch(/^text\/plain/);
  expect(value(text, 'job_registry_jobs{state="running"}')).toBe(1);
  expect(value(text, 'job_registry_jobs{state="failed"}')).toBe(1);
  expect(value(text, 'job_registry_tokens_total')).toBe(5);
  expect(value(text, 'job_registry_jobs_created_total')).toBe(2);
  expect(value(text, 'job_registry_jobs_ended_total{state="failed"}')).toBe(1);
  expect(value(text, 'job_registry_open_streams')).toBe(3);
  for (let i = 0; i < 7; i++) r.emit(a, 't');
  r.updateState(a, 'completed');
  text = await m.metrics();
  expect(value(text, 'job_registry_tokens_total')).toBe(12);
  expect(value(text, 'job_registry_jobs_ended_total{state="completed"}')).toBe(1);
  expect(value(text, 'job_registry_jobs{state="running"}')).toBe(0);
  await r.dispose();
  // A disposed registry reads 0, and the scrape still answers.
  expect(value(await m.metrics(), 'job_registry_jobs{state="completed"}')).toBe(0);
});

test('metrics go into a given prom-client registry with a given prefix', async () => {
  const register = new Registry();
  const r = new JobRegistry();
  registryMetrics(r, { register, prefix: 'app_' });
  expect(await register.metrics()).toMatch(/^# HELP app_jobs /m);
  expect(() => registryMetrics(r, { prefix: 'bad prefix' })).toThrow(/not a Prometheus name/);
  expect(() => registryMetrics(undefined as never)).toThrow(/needs a JobRegistry/);
  await r.dispose();
});

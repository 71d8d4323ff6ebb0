/**
 * Fixed-seed rounds of the fault checker (test/chaos/harness.ts): one against a Redis of its own (server
 * kills, Redis restarts with and without persistence, FLUSHALL, pauses, client kills, cancels, cuts), one
 * against a Redis Cluster (client kills and pauses on masters, server kills, cancels, cuts). Each must end
 * without a single violation; the whole report is printed when one is found. `npm run chaos` runs longer
 * rounds with any seed.
 */
import { spawnSync } from 'node:child_process';
import { describeIf } from '../helpers/collect.js';
import { clusterNodes, type TestCluster } from '../helpers/cluster.js';
import { formatReport, runChaos, type ChaosReport } from './harness.js';

function haveRedisServer(): boolean {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0) return true;
  if (process.env.CI === 'true') throw new Error('redis-server is required in CI for the chaos rounds');
  console.warn('SKIPPING the chaos rounds: no redis-server binary on PATH');
  return false;
}

const SEED = 20_251_129;
const single = haveRedisServer();
// REDIS_CLUSTER_NODES (CI sets it) or a private cluster; clusterNodes() throws in CI when there is none.
const cluster: TestCluster | undefined = single ? await clusterNodes() : undefined;
afterAll(async () => {
  await cluster?.stop();
});

function expectClean(report: ChaosReport): void {
  if (report.violations.length > 0) console.error(formatReport(report, 40));
  expect(report.violations).toEqual([]);
}

describeIf(single)('chaos round on a Redis of its own', () => {
  test('no violation', async () => {
    const report = await runChaos({
      seed: SEED,
      durationMs: 20_000,
      servers: 3,
      mode: 'single',
      maxJobMs: 4000,
    });
    expectClean(report);
    expect(report.jobs).toBeGreaterThan(20);
    expect(report.tokensChecked).toBeGreaterThan(1000);
  }, 120_000);
});

describeIf(cluster !== undefined)('chaos round on a Redis Cluster', () => {
  test('no violation', async () => {
    const report = await runChaos({
      seed: SEED,
      durationMs: 12_000,
      servers: 3,
      mode: 'cluster',
      maxJobMs: 3000,
      clusterNodes: cluster!.nodes,
    });
    expectClean(report);
    expect(report.jobs).toBeGreaterThan(10);
  }, 120_000);
});

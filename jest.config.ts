import type { Config } from 'jest';

const config: Config = {
  preset: 'ts-jest/presets/default-esm',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  // The fault checker's rounds run with `npm run test:chaos` (and `npm run chaos` for long runs).
  // The Durable Streams conformance suite (a minute per backend) runs with `npm run test:durable`.
  testPathIgnorePatterns: [
    ...(process.env.CHAOS === '1' ? [] : ['/test/chaos/']),
    ...(process.env.CONFORMANCE === '1' ? [] : ['/test/durable-streams/conformance']),
  ],
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: 'tsconfig.json', diagnostics: { warnOnly: false } }],
  },
  testTimeout: 30_000,
  maxWorkers: 2,
};

export default config;

// The published Durable Streams conformance suite, run by vitest (not jest) against CONFORMANCE_TEST_URL.
// Started by test/durable-streams/conformance.ts, which serves the protocol on port 0 first.
import { runConformanceTests } from '@durable-streams/server-conformance-tests';

const baseUrl = process.env.CONFORMANCE_TEST_URL;
if (!baseUrl) throw new Error('CONFORMANCE_TEST_URL is required (run test/durable-streams/conformance.ts)');
runConformanceTests({ baseUrl });

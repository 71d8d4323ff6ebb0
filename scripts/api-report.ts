/**
 * `npm run api`: the API report of every entry point (`api/<entry>.api.md`, by `@microsoft/api-extractor`
 * from the built `.d.ts`). `npm run api -- --check` (CI) fails when the public surface differs from the
 * committed reports: a change to what users may call must come with its report.
 */
import { Extractor, ExtractorConfig, ExtractorLogLevel } from '@microsoft/api-extractor';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';

const ENTRIES: Record<string, string> = {
  'job-registry': 'core',
  'job-registry-http': 'http',
  'job-registry-client': 'client',
  'job-registry-redis': 'redis',
  'job-registry-fetch': 'fetch',
  'job-registry-metrics': 'metrics',
  'job-registry-durable-streams': 'durable-streams',
  'job-registry-ai-sdk': 'ai-sdk',
  'job-registry-ai-sdk-client': 'ai-sdk/client',
};

const root = resolve(import.meta.dirname, '..');
const check = process.argv.includes('--check');
mkdirSync(resolve(root, 'api'), { recursive: true });
let failed = 0;
for (const [report, dir] of Object.entries(ENTRIES)) {
  const config = ExtractorConfig.prepare({
    configObject: {
      projectFolder: root,
      mainEntryPointFilePath: `<projectFolder>/dist/${dir.endsWith('/client') ? dir : `${dir}/index`}.d.ts`,
      compiler: { tsconfigFilePath: '<projectFolder>/tsconfig.build.json' },
      apiReport: {
        enabled: true,
        reportFileName: report,
        reportFolder: '<projectFolder>/api/',
        reportTempFolder: '<projectFolder>/test-output/api/',
      },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        compilerMessageReporting: { default: { logLevel: ExtractorLogLevel.Warning } },
        extractorMessageReporting: {
          default: { logLevel: ExtractorLogLevel.None },
          'ae-forgotten-export': { logLevel: ExtractorLogLevel.None, addToApiReportFile: true },
        },
        tsdocMessageReporting: { default: { logLevel: ExtractorLogLevel.None } },
      },
    },
    configObjectFullPath: undefined,
    packageJsonFullPath: resolve(root, 'package.json'),
  });
  const result = Extractor.invoke(config, { localBuild: !check, showVerboseMessages: false });
  if (!result.succeeded || (check && result.apiReportChanged)) {
    failed++;
    console.error(
      `api/${report}.api.md: ${result.apiReportChanged ? 'the public surface changed; run npm run api and commit the report' : `${result.errorCount} errors`}`,
    );
  } else console.log(`api/${report}.api.md: ${result.apiReportChanged ? 'updated' : 'unchanged'}`);
}
process.exit(failed === 0 ? 0 : 1);

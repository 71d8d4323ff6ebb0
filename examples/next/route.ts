/**
 * A Next.js App Router route module (app/v1/[...path]/route.ts): the fetch handler answers every method
 * of the dual-call routes. Next.js keeps a module's state per server instance, so the registry lives here.
 */
import { JobRegistry } from '../../src/core/index.js';
import { createFetchHandler } from '../../src/fetch/index.js';
import { simulateModel, parseModelRequest, type ModelRequest } from '../model.js';

export const registry = new JobRegistry<string, ModelRequest>({ maxJobs: 1000, concurrency: 16 });
const handler = createFetchHandler(registry, { execute: simulateModel, parsePayload: parseModelRequest });

export const GET = handler;
export const POST = handler;
export const DELETE = handler;
export const OPTIONS = handler;
export const dynamic = 'force-dynamic';

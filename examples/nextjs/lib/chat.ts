/**
 * The chat routes of a Next.js App Router app (`next start`, the Node.js runtime): one registry per server
 * instance, the AI SDK's `streamText` as each answer's executor. The two route modules under `app/api/chat/`
 * export this one handler. In your app, import from `job-registry` and `job-registry/ai-sdk`.
 */
import { convertToModelMessages, streamText } from 'ai';
import { JobRegistry } from '../../../src/core/index.js';
import { createFetchChatHandler } from '../../../src/ai-sdk/index.js';

/** A chat's answer outlives its request, so it needs a long-lived server: add `redisBackend` to share it across instances. */
export const registry = new JobRegistry({ maxJobs: 1000, concurrency: 16 });

export const chat = createFetchChatHandler(registry, {
  // `signal` aborts when the answer is stopped (`DELETE /api/chat/{id}/stream`, from any tab or instance).
  execute: async ({ messages }, { signal }) =>
    streamText({
      model: 'openai/gpt-4o-mini',
      messages: await convertToModelMessages(messages),
      abortSignal: signal,
    }).toUIMessageStream({
      originalMessages: messages,
      // Also called for a stopped answer (`isAborted`), with the text it had: save it as it is.
      onEnd: ({ messages: all, isAborted }) => {
        console.log(`chat answered with ${all.length} messages${isAborted ? ' (stopped)' : ''}`);
      },
    }),
});

/**
 * `app/api/chat/[id]/stream/route.ts`: `GET` replays the chat's live answer (what `resumeStream()` asks
 * for; `204` when there is none), `DELETE` stops it (`JobChatTransport.stop(chatId)`).
 */
import { chat } from '../../../../../lib/chat.js';

export const GET = chat;
export const DELETE = chat;
export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

/** `app/api/chat/route.ts`: `POST /api/chat` starts a chat's answer and streams it (what `useChat` sends). */
import { chat } from '../../../lib/chat.js';

export const POST = chat;
export const runtime = 'nodejs';
export const dynamic = 'force-dynamic';

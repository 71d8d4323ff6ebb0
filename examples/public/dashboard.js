// The dashboard: a live job table from /v1/events and a prompt form that streams its job's tokens
// through the project's own client (bundled at /assets/client.js).
//
// The table is built from /v1/events alone: its snapshot on each (re)connection, then `created`,
// `stateChanged` and `removed` events, and `progress` events for the token counts of running jobs (the
// server coalesces them and sends a job's last count before its end). Nothing is polled. The stream is
// read with fetch and a small SSE parser: it can carry the Authorization header (a browser EventSource
// cannot), it learns a 401 (the page then asks for an API key, kept in sessionStorage, this tab only), and
// it passes every event type on. A job's tokens still come through an EventSource, on the (signed, when
// the server has API keys) sse_url the POST answered with.
import { submitJob, streamJob, cancelJob } from '/assets/client.js';

const base = '/v1/inference';
const KEY_STORE = 'job-registry.api-key';
const jobs = new Map(); // job_id -> { state, tokens, created, row }
const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

let apiKey = sessionStorage.getItem(KEY_STORE) ?? '';
const authHeaders = () => (apiKey ? { Authorization: `Bearer ${apiKey}` } : {});

function row(job) {
  let entry = jobs.get(job.job_id);
  if (!entry) {
    const tr = document.createElement('tr');
    tr.dataset.jobId = job.job_id;
    tr.className = 'fresh';
    tr.innerHTML =
      '<td><code></code></td><td><span class="badge"></span></td><td class="num tokens-cell"></td><td class="num age"></td><td><button class="ghost cancel" type="button">Cancel</button></td>';
    tr.querySelector('code').textContent = job.job_id;
    tr.querySelector('code').title = job.job_id;
    tr.querySelector('.cancel').addEventListener('click', () => cancel(job.job_id));
    $('jobs').prepend(tr);
    entry = {
      state: 'queued',
      tokens: 0,
      created: Date.parse(job.created_at ?? job.at ?? new Date().toISOString()),
      row: tr,
    };
    jobs.set(job.job_id, entry);
    tr.querySelector('.age').textContent = age(Date.now() - entry.created);
  }
  // A job never leaves a terminal state, whatever order the updates arrive in.
  if (job.state && !TERMINAL.has(entry.state)) entry.state = job.state;
  if (typeof job.token_count === 'number') entry.tokens = Math.max(entry.tokens, job.token_count);
  paint(entry);
  return entry;
}

function paint(entry) {
  const badge = entry.row.querySelector('.badge');
  badge.textContent = entry.state;
  badge.className = `badge ${entry.state}`;
  entry.row.dataset.state = entry.state;
  entry.row.querySelector('.tokens-cell').textContent = String(entry.tokens);
  entry.row.querySelector('.cancel').disabled = TERMINAL.has(entry.state);
}

function stats() {
  const count = { running: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const j of jobs.values()) if (j.state in count) count[j.state]++;
  $('stat-total').textContent = String(jobs.size);
  for (const k of Object.keys(count)) $(`stat-${k}`).textContent = String(count[k]);
  $('empty').hidden = jobs.size > 0;
}

function clearJobs() {
  for (const entry of jobs.values()) entry.row.remove();
  jobs.clear();
  stats();
}

function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
setInterval(() => {
  const now = Date.now();
  for (const j of jobs.values()) j.row.querySelector('.age').textContent = age(now - j.created);
}, 1000);

function cancel(jobId) {
  cancelJob(`${base}/${jobId}`, { headers: authHeaders() }).catch((e) => {
    if (e.status === 401) needKey('the server refused the API key');
  });
}

function setConn(state, text) {
  $('conn').dataset.state = state;
  $('conn').textContent = text;
}

function onEvent(e) {
  setConn('live', apiKey ? 'live · key set' : 'live');
  if (e.type === 'snapshot') {
    for (const [id, entry] of jobs)
      if (!e.jobs.some((j) => j.job_id === id)) (entry.row.remove(), jobs.delete(id));
    for (const job of e.jobs) row(job);
  } else if (e.type === 'created') row({ job_id: e.job_id, created_at: e.at, state: 'queued' });
  else if (e.type === 'stateChanged') row({ job_id: e.job_id, state: e.to });
  else if (e.type === 'progress') {
    // Token counts of live jobs, coalesced by the server; a job's last count comes before its end.
    if (jobs.has(e.job_id)) row({ job_id: e.job_id, token_count: e.token_count });
  } else if (e.type === 'removed') {
    const entry = jobs.get(e.job_id);
    if (entry) (entry.row.remove(), jobs.delete(e.job_id));
  }
  stats();
}

/**
 * Minimal SSE parsing (the WHATWG rules the server's output needs): lines end with CRLF, LF or CR; a blank
 * line dispatches the event; `:` lines are comments; `retry:` sets the reconnection delay.
 */
function sseParser(dispatch, setRetry) {
  let buffer = '';
  let event = '';
  let data = [];
  const line = (l) => {
    if (l === '') {
      if (data.length > 0) dispatch(event || 'message', data.join('\n'));
      event = '';
      data = [];
      return;
    }
    if (l.startsWith(':')) return;
    const i = l.indexOf(':');
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? '' : l.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'retry' && /^\d+$/.test(value)) setRetry(Number(value));
  };
  return (chunk) => {
    buffer += chunk;
    for (;;) {
      const m = /\r\n|\r|\n/.exec(buffer);
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (m === null || (m[0] === '\r' && m.index === buffer.length - 1)) return;
      line(buffer.slice(0, m.index));
      buffer = buffer.slice(m.index + m[0].length);
    }
  };
}

/**
 * `/v1/events` through fetch. Reconnects after a dropped connection (the server starts each connection
 * with a fresh snapshot), waiting the stream's `retry:` hint, or the `Retry-After` of a busy or draining
 * server; a 401 asks for a key. `opened` runs once the server accepted the stream. Returns a function that
 * stops it.
 */
function watchJobEvents(url, headers, next, opened) {
  const abort = new AbortController();
  let stopped = false;
  let retryMs = 1000;
  (async () => {
    while (!stopped) {
      let wait = retryMs;
      try {
        const res = await fetch(url, {
          headers: { ...headers, Accept: 'text/event-stream' },
          cache: 'no-store',
          signal: abort.signal,
        });
        if (stopped) return;
        if (res.status === 401) return needKey(apiKey ? 'the server refused that API key' : '');
        const retryAfter = Number(res.headers.get('Retry-After'));
        if (retryAfter > 0) wait = Math.min(retryAfter, 60) * 1000;
        if (!res.ok || res.body === null) throw new Error(`HTTP ${res.status}`);
        opened();
        const push = sseParser(
          (type, data) => {
            const body = JSON.parse(data);
            next(type === 'snapshot' ? { type, jobs: body } : { type, ...body });
          },
          (ms) => (retryMs = ms),
        );
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done || stopped) break;
          push(value);
        }
      } catch {
        /* dropped or refused: try again below */
      }
      if (stopped) return;
      setConn('connecting', 'reconnecting…');
      await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return () => {
    stopped = true;
    abort.abort();
  };
}

let stopEvents;

function connect() {
  stopEvents?.();
  setConn('connecting', 'connecting…');
  stopEvents = watchJobEvents('/v1/events', authHeaders(), onEvent, () => {
    $('key-form').hidden = true;
    $('key-forget').hidden = !apiKey;
  });
}

function needKey(why) {
  stopEvents?.();
  stopEvents = undefined;
  clearJobs();
  setConn('locked', 'API key needed');
  $('key-forget').hidden = true;
  $('key-form').hidden = false;
  $('key-error').textContent = why;
  $('api-key').focus();
}

$('key-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  apiKey = $('api-key').value.trim();
  $('api-key').value = '';
  if (apiKey) sessionStorage.setItem(KEY_STORE, apiKey);
  else sessionStorage.removeItem(KEY_STORE);
  connect();
});

$('key-forget').addEventListener('click', () => {
  apiKey = '';
  sessionStorage.removeItem(KEY_STORE);
  clearJobs();
  connect();
});

connect();

let current;
$('submit-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('form-error').textContent = '';
  const payload = { prompt: $('prompt').value };
  for (const [key, el] of [
    ['max_tokens', 'max-tokens'],
    ['delay_ms', 'delay-ms'],
    ['fail_after', 'fail-after'],
  ]) {
    if ($(el).value !== '') payload[key] = Number($(el).value);
  }
  let job;
  try {
    job = await submitJob(base, payload, { headers: authHeaders() });
  } catch (e) {
    if (e.status === 401) needKey('the server needs an API key to submit a job');
    $('form-error').textContent = e.message;
    return;
  }
  current?.unsubscribe();
  $('output').hidden = false;
  $('output-id').textContent = job.job_id;
  $('output-tokens').textContent = '';
  setOutputState('running');
  $('output-cancel').onclick = () => cancel(job.job_id);
  // sse_url carries a signed stream token when the server has API keys, so a plain EventSource works.
  current = streamJob(job.sse_url).subscribe({
    next: ({ token }) => {
      const span = document.createElement('span');
      span.textContent = ($('output-tokens').childElementCount ? ' ' : '') + token;
      $('output-tokens').append(span);
      const entry = jobs.get(job.job_id);
      if (entry)
        ((entry.tokens = Math.max(entry.tokens, $('output-tokens').childElementCount)), paint(entry));
    },
    complete: () => end('completed', 'completed'),
    error: (e) => end(e.code === 'JOB_CANCELLED' ? 'cancelled' : 'failed', e.message),
  });
});

function setOutputState(state) {
  $('output-state').textContent = state;
  $('output-state').className = `badge ${state}`;
  $('output-cancel').disabled = TERMINAL.has(state);
}

function end(state, message) {
  setOutputState(state);
  const note = document.createElement('span');
  note.className = 'end';
  note.textContent = state === 'completed' ? '— end of stream' : `— ${message}`;
  $('output-tokens').append(note);
}

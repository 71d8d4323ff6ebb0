// The dashboard: a live job table from /v1/events and a prompt form that streams its job's tokens,
// both through the project's own client (bundled at /assets/client.js).
import { submitJob, streamJob, watchEvents, cancelJob } from '/assets/client.js';

const base = '/v1/inference';
const jobs = new Map(); // job_id -> { state, tokens, created, row }
const $ = (id) => document.getElementById(id);
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);

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
    tr.querySelector('.cancel').addEventListener('click', () =>
      cancelJob(`${base}/${job.job_id}`).catch(() => undefined),
    );
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

// Token counts of running jobs are refreshed from the list now and then; events carry states.
async function refreshCounts() {
  try {
    const list = await (await fetch('/v1/jobs')).json();
    // Only counts: a list fetched before an event must not roll a state back.
    for (const job of list)
      if (jobs.has(job.job_id)) row({ job_id: job.job_id, token_count: job.token_count });
  } catch {
    /* the server may be restarting */
  }
}
setInterval(() => {
  if ([...jobs.values()].some((j) => j.state === 'running')) refreshCounts();
}, 500);

watchEvents('/v1/events').subscribe((e) => {
  $('conn').dataset.state = 'live';
  $('conn').textContent = 'live';
  if (e.type === 'snapshot') {
    for (const [id, entry] of jobs)
      if (!e.jobs.some((j) => j.job_id === id)) (entry.row.remove(), jobs.delete(id));
    for (const job of e.jobs) row(job);
  } else if (e.type === 'created') row({ job_id: e.job_id, created_at: e.at, state: 'queued' });
  else if (e.type === 'stateChanged') {
    const entry = row({ job_id: e.job_id, state: e.to });
    if (TERMINAL.has(e.to)) refreshCounts();
    void entry;
  } else if (e.type === 'removed') {
    const entry = jobs.get(e.job_id);
    if (entry) (entry.row.remove(), jobs.delete(e.job_id));
  }
  stats();
});

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
    job = await submitJob(base, payload);
  } catch (e) {
    $('form-error').textContent = e.message;
    return;
  }
  current?.unsubscribe();
  $('output').hidden = false;
  $('output-id').textContent = job.job_id;
  $('output-tokens').textContent = '';
  setOutputState('running');
  $('output-cancel').onclick = () => cancelJob(`${base}/${job.job_id}`).catch(() => undefined);
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

// The dashboard: live charts, a windowed job list from /v1/events, a panel that watches any job's stream,
// and a prompt form that streams its job's tokens through the project's own client (/assets/client.js).
//
// Everything comes from /v1/events alone: its snapshot on each (re)connection, then `created`,
// `stateChanged` and `removed` events, and `progress` events for the token counts of running jobs (the
// server coalesces them and sends a job's last count before its end). Nothing is polled. The stream is
// read with fetch and a small SSE parser: it can carry the Authorization header (a browser EventSource
// cannot), it learns a 401 (the page then asks for an API key, kept in sessionStorage, this tab only), and
// it passes every event type on. The charts sample those events once a second; time to first token and
// tokens per second use the server's own `at` times, so the browser's clock never mixes in.
//
// The list holds 10,000 jobs without freezing: jobs live in a Map and a sorted array, and only the rows
// in view (plus a few) exist in the DOM. New data redraws them at most every DATA_REDRAW_MS (1,000 jobs
// streaming send thousands of events a second: the list need not follow each), scrolling on the next
// frame. Tokens of a watched or submitted job are appended once a frame, however many arrived.
import { submitJob, streamJob, cancelJob } from '/assets/client.js';

const base = '/v1/inference';
const KEY_STORE = 'job-registry.api-key';
const STATES = ['queued', 'running', 'completed', 'failed', 'cancelled'];
const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
const HISTORY_S = 180; // seconds the charts keep
const MIN_SPAN_S = 60; // the charts' time axis starts at this span and grows with the history to HISTORY_S
const OVERSCAN = 8; // rows drawn above and below the visible ones
const DATA_REDRAW_MS = 100; // the list redraws for new events at most this often
const FLASH_MAX = 4; // new rows flash only when at most this many jobs arrived since the last draw
const QUIET_BATCH = 20; // tokens appended in one frame beyond this do not fade in one by one
const TOKENS_PER_FRAME = 2000; // a replay of a long job is appended over several frames
const $ = (id) => document.getElementById(id);

let apiKey = sessionStorage.getItem(KEY_STORE) ?? '';
const authHeaders = () => (apiKey ? { Authorization: `Bearer ${apiKey}` } : {});

// ---------------------------------------------------------------------------------------------- the model

/** job_id -> { id, state, tokens, created, firstAt, lastAt, endAt } (times: ms, server clock) */
const jobs = new Map();
let order = []; // job ids, newest first
let orderHasRemoved = false;
const counts = Object.fromEntries(STATES.map((s) => [s, 0]));
let tokensSeen = 0; // tokens counted from progress events since the page loaded (the tokens/s source)
const signedUrls = new Map(); // job_id -> sse_url, for jobs this page submitted

const time = (iso) => {
  const t = Date.parse(iso ?? '');
  return Number.isNaN(t) ? Date.now() : t;
};

function setState(job, state, at) {
  // A job never leaves a terminal state, whatever order the updates arrive in.
  if (!state || state === job.state || TERMINAL.has(job.state)) return;
  if (job.state in counts) counts[job.state]--;
  job.state = state;
  counts[state]++;
  if (TERMINAL.has(state)) job.endAt = at;
}

function addJob(id, createdAt, state, key) {
  let job = jobs.get(id);
  if (job) return job;
  job = {
    id,
    // The key a job was created under (an AI SDK chat's id), shown under its id.
    key,
    firstCount: 0,
    state: '',
    tokens: 0,
    created: createdAt,
    firstAt: undefined,
    lastAt: undefined,
    endAt: undefined,
  };
  jobs.set(id, job);
  setState(job, state ?? 'queued', createdAt);
  return job;
}

function setTokens(job, count, at, live) {
  if (count <= job.tokens) return;
  if (live) tokensSeen += count - job.tokens;
  // Only a job seen from zero tokens has a known first-token time.
  // (Counts are coalesced by the server, so it is the time of the first count above zero.)
  if (job.tokens === 0 && job.firstAt === undefined && live) {
    job.firstAt = at;
    job.firstCount = count;
  }
  job.tokens = count;
  job.lastAt = at;
}

function removeJob(id) {
  const job = jobs.get(id);
  if (!job) return;
  counts[job.state]--;
  jobs.delete(id);
  orderHasRemoved = true; // `order` is compacted on the next draw: one pass however many were removed
}

function clearJobs() {
  jobs.clear();
  order = [];
  orderHasRemoved = false;
  for (const s of STATES) counts[s] = 0;
  invalidate(true, true);
}

/** Time to first token in ms, when known. */
const ttft = (job) => (job.firstAt === undefined ? undefined : job.firstAt - job.created);

/**
 * Tokens per second after the first count (to the end, or to now while it runs); for a job too short to
 * have two counts, its tokens over its whole life.
 */
function rate(job) {
  if (job.firstAt === undefined) return undefined;
  const until = job.endAt ?? (job.state === 'running' ? Math.max(job.lastAt, serverNow()) : job.lastAt);
  const s = (until - job.firstAt) / 1000;
  if (job.tokens > job.firstCount && s > 0) return (job.tokens - job.firstCount) / s;
  const life = (until - job.created) / 1000;
  return TERMINAL.has(job.state) && life > 0 ? job.tokens / life : undefined;
}

// The server's clock, estimated from the latest event's `at` (events are sent as they happen).
let clockSkew = 0;
const serverNow = () => Date.now() + clockSkew;

function onEvent(e) {
  setConn('live', apiKey ? 'live · key set' : 'live');
  if (e.at) clockSkew = time(e.at) - Date.now();
  if (e.type === 'snapshot') {
    const keep = new Set(e.jobs.map((j) => j.job_id));
    for (const id of [...jobs.keys()]) if (!keep.has(id)) removeJob(id);
    for (const w of e.jobs) {
      const job = addJob(w.job_id, time(w.created_at), 'queued', w.key);
      setState(job, w.state, time(w.updated_at));
      setTokens(job, w.token_count ?? 0, time(w.updated_at), false);
      // A job that started before this page opened: the snapshot says when its first token came.
      if (w.first_token_at !== undefined && job.firstAt === undefined) {
        job.firstAt = time(w.first_token_at);
        job.firstCount = 1;
      }
    }
    // Newest first; jobs of the same millisecond newest first too (the snapshot lists them oldest first).
    order = [...jobs.values()]
      .reverse()
      .sort((a, b) => b.created - a.created)
      .map((j) => j.id);
  } else if (e.type === 'created') {
    if (!jobs.has(e.job_id)) {
      addJob(e.job_id, time(e.at), 'queued', e.key);
      order.unshift(e.job_id);
      fresh.add(e.job_id);
    }
  } else if (e.type === 'stateChanged') {
    const job = jobs.get(e.job_id);
    if (job) setState(job, e.to, time(e.at));
  } else if (e.type === 'progress') {
    // Token counts of live jobs, coalesced by the server; a job's last count comes before its end.
    const job = jobs.get(e.job_id);
    if (job) setTokens(job, e.token_count, time(e.at), true);
    if (watching?.id === e.job_id) paintWatchFigures();
  } else if (e.type === 'removed') removeJob(e.job_id);
  invalidate(e.type !== 'progress');
}

// ---------------------------------------------------------------------------------------------- the list

const scroller = $('scroller');
const tbody = $('jobs');
const rowsShown = new Map(); // job_id -> tr, the rows in the DOM
const fresh = new Set(); // ids created since the last draw: their rows flash once
let filtered = order; // the ids the filter lets through, newest first
let filterDirty = true;
let frameQueued = false; // a draw is asked for the next frame
let drawTimer; // a draw waits for DATA_REDRAW_MS since the last one
let lastDraw = -Infinity;
let rowHeight = 0;
let activeId; // the row that was focused last
const topPad = document.createElement('tr');
const bottomPad = document.createElement('tr');
topPad.className = bottomPad.className = 'pad';
topPad.innerHTML = bottomPad.innerHTML = '<td colspan="7"></td>';
topPad.setAttribute('aria-hidden', 'true');
bottomPad.setAttribute('aria-hidden', 'true');
tbody.append(topPad, bottomPad);

/**
 * Asks for a redraw: on the next frame when `soon` (scrolling, typing, a click), else once
 * DATA_REDRAW_MS have passed since the last draw, so a flood of events costs a few draws a second instead
 * of one each frame. `membership` when the set of listed jobs may have changed.
 */
function invalidate(membership = true, soon = false) {
  if (membership) filterDirty = true;
  if (frameQueued) return;
  const wait = soon ? 0 : lastDraw + DATA_REDRAW_MS - performance.now();
  if (wait > 0) {
    drawTimer ??= setTimeout(queueFrame, wait);
    return;
  }
  queueFrame();
}

function queueFrame() {
  clearTimeout(drawTimer);
  drawTimer = undefined;
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(draw);
}

function applyFilter() {
  const state = $('filter-state').value;
  const needle = $('search').value.trim().toLowerCase();
  if (orderHasRemoved) {
    order = order.filter((id) => jobs.has(id));
    orderHasRemoved = false;
  }
  filtered =
    !state && !needle
      ? order
      : order.filter(
          (id) =>
            (!state || jobs.get(id).state === state) &&
            (!needle ||
              id.toLowerCase().includes(needle) ||
              jobs.get(id).key?.toLowerCase().includes(needle)),
        );
  filterDirty = false;
}

// Rows are clones of one parsed template: no HTML parsing per row.
const rowTemplate = document.createElement('tr');
rowTemplate.tabIndex = -1;
rowTemplate.innerHTML =
  '<td class="c-id"><code></code></td><td class="c-state"><span class="badge"></span></td><td class="num tokens-cell"></td><td class="num ttft"></td><td class="num tps"></td><td class="num age"></td><td class="c-act"><button class="ghost cancel" type="button">Cancel</button></td>';
// From the keyboard: Delete on the row, or Cancel in the stream panel.
rowTemplate.querySelector('.cancel').tabIndex = -1;
const CELL = { id: 0, state: 1, tokens: 2, ttft: 3, tps: 4, age: 5, action: 6 }; // column indexes

function makeRow(id) {
  const tr = rowTemplate.cloneNode(true);
  tr.dataset.jobId = id;
  const code = tr.cells[CELL.id].firstChild;
  code.textContent = id;
  code.title = id;
  const key = jobs.get(id)?.key;
  if (key !== undefined) {
    const label = document.createElement('small');
    label.className = 'job-key';
    label.textContent = `key ${key}`;
    label.title = key;
    code.after(label);
  }
  tr.cells[CELL.action].firstChild.setAttribute('aria-label', `Cancel ${id}`);
  return tr;
}

const fmtMs = (ms) =>
  ms === undefined ? '—' : ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
const fmtRate = (r) => (r === undefined ? '—' : r < 10 ? r.toFixed(1) : String(Math.round(r)));

function paintRow(tr, job, now) {
  const cells = tr.cells;
  if (tr.dataset.state !== job.state) {
    tr.dataset.state = job.state;
    const badge = cells[CELL.state].firstChild;
    badge.textContent = job.state;
    badge.className = `badge ${job.state}`;
    cells[CELL.action].firstChild.disabled = TERMINAL.has(job.state);
  }
  setText(cells[CELL.tokens], String(job.tokens));
  setText(cells[CELL.ttft], fmtMs(ttft(job)));
  setText(cells[CELL.tps], fmtRate(rate(job)));
  setText(cells[CELL.age], age(now - job.created));
  tr.classList.toggle('watching', watching?.id === job.id);
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function draw() {
  frameQueued = false;
  clearTimeout(drawTimer);
  drawTimer = undefined;
  lastDraw = performance.now();
  if (filterDirty) applyFilter();
  if (!rowHeight) rowHeight = measureRow();
  const viewH = scroller.clientHeight || 400;
  const first = Math.max(0, Math.floor(scroller.scrollTop / rowHeight) - OVERSCAN);
  const last = Math.min(filtered.length, Math.ceil((scroller.scrollTop + viewH) / rowHeight) + OVERSCAN);
  const now = serverNow();
  const focusedId = document.activeElement?.closest?.('tr[data-job-id]')?.dataset.jobId;
  const want = new Set(filtered.slice(first, last));
  // A burst of new jobs moves every row at once: flashing them all would restyle each cell every frame.
  const flash = fresh.size <= FLASH_MAX;
  for (const [id, tr] of rowsShown)
    if (!want.has(id)) {
      tr.remove();
      rowsShown.delete(id);
    }
  // Rows already in place are never moved, so a focused row keeps its focus.
  let at = topPad.nextSibling;
  for (let i = first; i < last; i++) {
    const id = filtered[i];
    let tr = rowsShown.get(id);
    if (!tr) {
      tr = makeRow(id);
      if (flash && fresh.has(id)) tr.className = 'fresh';
      rowsShown.set(id, tr);
    }
    if (at !== tr) tbody.insertBefore(tr, at);
    else at = tr.nextSibling;
    paintRow(tr, jobs.get(id), now);
  }
  fresh.clear();
  // One row is in the tab order (roving tabindex): the last one focused while it is drawn, else the first.
  const tabbable = rowsShown.has(activeId) ? activeId : filtered[first];
  for (const [id, tr] of rowsShown) {
    const index = id === tabbable ? 0 : -1;
    if (tr.tabIndex !== index) tr.tabIndex = index;
  }
  topPad.style.height = `${first * rowHeight}px`;
  bottomPad.style.height = `${(filtered.length - last) * rowHeight}px`;
  if (focusedId && document.activeElement === document.body) rowsShown.get(focusedId)?.focus();
  stats();
}

/** The height of one row as laid out now (it follows the zoom level and the font). */
function measureRow() {
  const tr = makeRow('job-measure');
  tr.style.visibility = 'hidden';
  tbody.insertBefore(tr, bottomPad);
  const h = tr.getBoundingClientRect().height || 34;
  tr.remove();
  return h;
}
window.addEventListener('resize', () => {
  rowHeight = 0;
  invalidate(false, true);
});
scroller.addEventListener('scroll', () => invalidate(false, true), { passive: true });
$('filter-state').addEventListener('change', () => invalidate(true, true));
$('search').addEventListener('input', () => {
  scroller.scrollTop = 0;
  invalidate(true, true);
});

tbody.addEventListener('click', (ev) => {
  const tr = ev.target.closest('tr[data-job-id]');
  if (!tr) return;
  if (ev.target.closest('.cancel')) return cancel(tr.dataset.jobId);
  watch(tr.dataset.jobId);
});
tbody.addEventListener('focusin', (ev) => {
  const tr = ev.target.closest?.('tr[data-job-id]');
  if (tr) activeId = tr.dataset.jobId;
});
tbody.addEventListener('keydown', (ev) => {
  const tr = ev.target.closest?.('tr[data-job-id]');
  if (!tr || ev.target !== tr) return;
  if (ev.key === 'Delete') {
    ev.preventDefault();
    cancel(tr.dataset.jobId);
  } else if (ev.key === 'Enter' || ev.key === ' ') {
    ev.preventDefault();
    watch(tr.dataset.jobId);
  } else if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
    ev.preventDefault();
    const i = filtered.indexOf(tr.dataset.jobId) + (ev.key === 'ArrowDown' ? 1 : -1);
    if (i < 0 || i >= filtered.length) return;
    const id = filtered[i];
    activeId = id;
    const top = i * rowHeight;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + rowHeight > scroller.scrollTop + scroller.clientHeight)
      scroller.scrollTop = top + rowHeight - scroller.clientHeight;
    draw();
    rowsShown.get(id)?.focus();
  }
});

const COUNTED = ['running', 'completed', 'failed', 'cancelled']; // the states the header counts
const statEls = Object.fromEntries(['total', ...COUNTED].map((s) => [s, $(`stat-${s}`)]));
function stats() {
  setText(statEls.total, String(jobs.size));
  for (const s of COUNTED) setText(statEls[s], String(counts[s]));
  $('empty').hidden = jobs.size > 0;
  setText($('shown'), filtered.length === jobs.size ? '' : `${filtered.length} of ${jobs.size} shown`);
}

function age(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function cancel(jobId) {
  cancelJob(`${base}/${jobId}`, { headers: authHeaders() }).catch((e) => {
    if (e.status === 401) needKey('the server refused the API key');
  });
}

// -------------------------------------------------------------------------------------------- the charts

const history = []; // { tps, counts } once a second, oldest first
let lastTotal = 0;
const css = getComputedStyle(document.documentElement);
const colour = (name) => css.getPropertyValue(`--${name}`).trim() || '#888';

function sample() {
  const tps = Math.max(0, tokensSeen - lastTotal);
  lastTotal = tokensSeen;
  history.push({ tps, counts: { ...counts } });
  if (history.length > HISTORY_S) history.shift();
  const tpsCanvas = $('chart-tps');
  tpsCanvas.dataset.latest = String(tps);
  tpsCanvas.setAttribute('aria-label', `tokens per second, last ${HISTORY_S / 60} minutes: now ${tps}`);
  $('tps-value').textContent = String(tps);
  const states = $('chart-states');
  const summary = STATES.map((s) => `${s} ${counts[s]}`).join(', ');
  states.dataset.latest = summary;
  states.setAttribute('aria-label', `jobs by state, last ${HISTORY_S / 60} minutes: ${summary}`);
  drawChart(tpsCanvas, [{ colour: colour('accent'), values: history.map((h) => h.tps), fill: true }]);
  drawChart(
    states,
    STATES.map((s) => ({ colour: colour(s), values: history.map((h) => h.counts[s]) })),
  );
  invalidate(false); // ages and rates move with the clock
}

/** Line charts of the samples, right-aligned (now at the right edge). */
function drawChart(canvas, series) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const top = niceCeil(max);
  const pad = { l: 36, r: 6, t: 8, b: 16 };
  const span = Math.min(HISTORY_S, Math.max(MIN_SPAN_S, history.length));
  const x = (i, n) => pad.l + (w - pad.l - pad.r) * ((span - n + i) / (span - 1));
  const y = (v) => h - pad.b - (h - pad.t - pad.b) * (v / top);
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = colour('muted');
  ctx.strokeStyle = colour('line');
  ctx.lineWidth = 1;
  for (const v of [0, top / 2, top]) {
    ctx.beginPath();
    ctx.moveTo(pad.l, Math.round(y(v)) + 0.5);
    ctx.lineTo(w - pad.r, Math.round(y(v)) + 0.5);
    ctx.stroke();
    ctx.fillText(Number.isInteger(v) ? String(v) : v.toFixed(1), 4, y(v) + 4);
  }
  ctx.fillText(span % 60 === 0 ? `−${span / 60} min` : `−${span} s`, pad.l, h - 3);
  ctx.fillText('now', w - pad.r - 22, h - 3);
  for (const s of series) {
    const n = s.values.length;
    if (n === 0) continue;
    ctx.beginPath();
    s.values.forEach((v, i) => (i ? ctx.lineTo(x(i, n), y(v)) : ctx.moveTo(x(i, n), y(v))));
    ctx.strokeStyle = s.colour;
    ctx.lineWidth = 2;
    ctx.stroke();
    if (s.fill) {
      ctx.lineTo(x(n - 1, n), y(0));
      ctx.lineTo(x(0, n), y(0));
      ctx.closePath();
      ctx.globalAlpha = 0.18;
      ctx.fillStyle = s.colour;
      ctx.fill();
      ctx.globalAlpha = 1;
    }
  }
}

function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

setInterval(sample, 1000);
sample();

// ------------------------------------------------------------------------------------ watching one job

let watching; // { id, stop() }

/**
 * Appends a stream's tokens to `el`, each in its own span, once a frame and at most TOKENS_PER_FRAME at a
 * time: a replay brings thousands in one chunk, and a few appends (and layout reads) per frame keep the
 * page responsive where one per token would freeze it. `end` runs once every token before it is written.
 * With `follow`, the panel stays scrolled to its end while the reader was there.
 */
function tokenWriter(el, { follow = false, onCount } = {}) {
  let pending = [];
  let count = 0;
  let frame = 0;
  let ended;
  const write = () => {
    frame = 0;
    const atEnd = follow && el.scrollHeight - el.scrollTop - el.clientHeight < 80;
    const take = pending.length > TOKENS_PER_FRAME ? pending.splice(0, TOKENS_PER_FRAME) : pending;
    if (take === pending) pending = [];
    const batch = document.createDocumentFragment();
    const quiet = take.length > QUIET_BATCH; // a replay: no fade-in for each of them
    for (const token of take) {
      const span = document.createElement('span');
      span.textContent = (count++ ? ' ' : '') + token;
      if (quiet) span.className = 'quiet';
      batch.append(span);
    }
    el.append(batch);
    onCount?.(count);
    if (pending.length > 0) frame = requestAnimationFrame(write);
    else ended?.();
    if (atEnd) el.scrollTop = el.scrollHeight;
  };
  return {
    push(token) {
      pending.push(token);
      frame ||= requestAnimationFrame(write);
    },
    /** Runs `fn` (the end note) once every token pushed so far is written. */
    end(fn) {
      ended = () => {
        ended = undefined;
        fn();
      };
      if (pending.length === 0 && frame === 0) ended();
    },
    /** Drops what is pending: the panel is closed or shows another stream. */
    stop() {
      cancelAnimationFrame(frame);
      frame = 0;
      pending = [];
      ended = undefined;
    },
  };
}

/** Opens the side panel on a job and streams it from its first token (replay), then live, to its end. */
function watch(id) {
  watching?.stop();
  const tokensEl = $('watch-tokens');
  tokensEl.textContent = '';
  $('watch-count').textContent = '0';
  $('watch').hidden = false;
  $('main').classList.add('watching');
  $('watch-id').textContent = id;
  $('watch-id').title = id;
  setBadge($('watch-state'), jobs.get(id)?.state ?? 'running');
  $('watch-cancel').disabled = TERMINAL.has(jobs.get(id)?.state);
  $('watch-cancel').onclick = () => cancel(id);
  const writer = tokenWriter(tokensEl, {
    follow: true,
    onCount: (n) => ($('watch-count').textContent = String(n)),
  });
  const onToken = (token) => writer.push(token);
  const onEnd = (state, message) =>
    writer.end(() => {
      setBadge($('watch-state'), state);
      $('watch-cancel').disabled = true;
      const note = document.createElement('span');
      note.className = 'end';
      note.textContent = state === 'completed' ? '— end of stream' : `— ${state}: ${message}`;
      tokensEl.append(note);
      paintWatchFigures();
    });
  const url = `${base}/${encodeURIComponent(id)}/stream`;
  let stopStream;
  if (apiKey && !signedUrls.has(id)) {
    // A job this page did not submit has no signed URL: read its stream with the key, through fetch.
    stopStream = watchJobStream(url, authHeaders(), onToken, onEnd);
  } else {
    const sub = streamJob(signedUrls.get(id) ?? url).subscribe({
      next: ({ token }) => onToken(token),
      complete: () => onEnd('completed'),
      error: (e) =>
        onEnd(
          e.code === 'JOB_CANCELLED' ? 'cancelled' : e.code === 'JOB_FAILED' ? 'failed' : 'error',
          e.message,
        ),
    });
    stopStream = () => sub.unsubscribe();
  }
  const stop = () => {
    stopStream();
    writer.stop();
  };
  watching = { id, stop };
  paintWatchFigures();
  invalidate(false, true);
}

function paintWatchFigures() {
  const job = watching && jobs.get(watching.id);
  if (!job) return;
  $('watch-ttft').textContent = fmtMs(ttft(job));
  $('watch-tps').textContent = fmtRate(rate(job));
  if (!TERMINAL.has($('watch-state').textContent)) {
    setBadge($('watch-state'), job.state);
    $('watch-cancel').disabled = TERMINAL.has(job.state);
  }
}

$('watch-close').addEventListener('click', () => {
  const id = watching?.id;
  watching?.stop();
  watching = undefined;
  $('watch').hidden = true;
  $('main').classList.remove('watching');
  invalidate(false, true);
  if (id) rowsShown.get(id)?.focus();
});

/**
 * A job's token stream through fetch, with the Authorization header: from seq 0, resuming after the last
 * seq seen when the connection drops (`Last-Event-ID`), until the terminal event. Returns a stop function.
 */
function watchJobStream(url, headers, onToken, onEnd) {
  const abort = new AbortController();
  let last = -1;
  let ended = false;
  let retryMs = 1000;
  (async () => {
    for (let attempt = 0; !ended && attempt < 20; attempt++) {
      try {
        const res = await fetch(url, {
          headers: {
            ...headers,
            Accept: 'text/event-stream',
            ...(last >= 0 ? { 'Last-Event-ID': String(last) } : {}),
          },
          cache: 'no-store',
          signal: abort.signal,
        });
        if (res.status === 204) return;
        if (res.status === 401) return ((ended = true), onEnd('error', 'the server refused the API key'));
        if (!res.ok || res.body === null) {
          let message = `HTTP ${res.status}`;
          try {
            message = (await res.json()).error?.message ?? message;
          } catch {
            /* not our JSON error: keep the status */
          }
          if (res.status !== 429 && res.status < 500) return ((ended = true), onEnd('error', message));
          throw new Error(message);
        }
        const push = sseParser(
          (type, data, id) => {
            if (ended) return;
            if (type === 'token') {
              const seq = Number(id);
              if (seq <= last) return;
              last = seq;
              onToken(JSON.parse(data));
            } else if (type === 'done' || type === 'error') {
              ended = true;
              const body = JSON.parse(data);
              onEnd(body.state ?? (type === 'done' ? 'completed' : 'failed'), body.error);
              abort.abort();
            }
          },
          (ms) => (retryMs = ms),
        );
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done || ended) break;
          push(value);
        }
      } catch {
        /* dropped: resume below */
      }
      if (!ended) await new Promise((r) => setTimeout(r, retryMs));
    }
  })();
  return () => {
    ended = true;
    abort.abort();
  };
}

// ------------------------------------------------------------------------------------- /v1/events

const connEl = $('conn');
function setConn(state, text) {
  if (connEl.dataset.state === state && connEl.textContent === text) return;
  connEl.dataset.state = state;
  connEl.textContent = text;
}

/**
 * Minimal SSE parsing (the WHATWG rules the server's output needs): lines end with CRLF, LF or CR; a blank
 * line dispatches the event; `:` lines are comments; `retry:` sets the reconnection delay. Lines are cut
 * from the buffer by index, so a chunk of many events costs one pass.
 */
function sseParser(dispatch, setRetry) {
  let buffer = '';
  let event = '';
  let data = [];
  let id = '';
  const line = (l) => {
    if (l === '') {
      if (data.length > 0) dispatch(event || 'message', data.join('\n'), id);
      event = '';
      data = [];
      return;
    }
    if (l.charCodeAt(0) === 58 /* : */) return;
    const i = l.indexOf(':');
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? '' : l.slice(i + 1);
    if (value.charCodeAt(0) === 32) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
    else if (field === 'id') id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) setRetry(Number(value));
  };
  const eol = /\r\n|\r|\n/g;
  return (chunk) => {
    buffer += chunk;
    let start = 0;
    eol.lastIndex = 0;
    for (;;) {
      const m = eol.exec(buffer);
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      if (m === null || (m[0] === '\r' && m.index === buffer.length - 1)) break;
      line(buffer.slice(start, m.index));
      start = m.index + m[0].length;
    }
    buffer = buffer.slice(start);
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
  signedUrls.clear();
  clearJobs();
  connect();
});

connect();

// ------------------------------------------------------------------------------------- submitting

let current; // { stop() }: the submitted job's stream in the output panel
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
  signedUrls.set(job.job_id, job.sse_url);
  current?.stop();
  $('output').hidden = false;
  $('output-id').textContent = job.job_id;
  $('output-tokens').textContent = '';
  setOutputState('running');
  $('output-cancel').onclick = () => cancel(job.job_id);
  const writer = tokenWriter($('output-tokens'));
  const end = (state, message) =>
    writer.end(() => {
      setOutputState(state);
      const note = document.createElement('span');
      note.className = 'end';
      note.textContent = state === 'completed' ? '— end of stream' : `— ${message}`;
      $('output-tokens').append(note);
    });
  // sse_url carries a signed stream token when the server has API keys, so a plain EventSource works.
  const sub = streamJob(job.sse_url).subscribe({
    next: ({ token }) => writer.push(token),
    complete: () => end('completed', 'completed'),
    error: (e) => end(e.code === 'JOB_CANCELLED' ? 'cancelled' : 'failed', e.message),
  });
  current = {
    stop: () => {
      sub.unsubscribe();
      writer.stop();
    },
  };
});

function setBadge(el, state) {
  el.textContent = state;
  el.className = `badge ${state}`;
}

function setOutputState(state) {
  setBadge($('output-state'), state);
  $('output-cancel').disabled = TERMINAL.has(state);
}

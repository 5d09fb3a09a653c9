// The outflow console (src/console/console.html): polls the admin server's
// JSON and redraws. Everything from the server is put in the page as text
// (textContent), never as HTML. Endpoints: /status and /readyz every 2 s,
// /api/snapshots and /api/signals with them, /api/history (once, then
// ?since= every 5 s), /api/log every 5 s, /api/config once; actions POST to
// /api/snapshot, /api/snapshot/stop, /api/sinks/<name>/pause|resume and
// /api/tables with the token as a Bearer header.
'use strict';

const STATUS_EVERY_MS = 2000;
const HISTORY_EVERY_MS = 5000;
const RATE_WINDOW_S = 30;
const HISTORY_CAPACITY = 720;
const COLORS = ['#2f6fde', '#e0712c', '#1f8f4e', '#9b4dca', '#c53030', '#0f8b8d', '#b7791f', '#5a6478'];
const SVG_NS = ['http', '://www.w3.org/2000/svg'].join('');

const state = {
  statusRenders: 0,
  samples: [],              // /api/history samples, oldest first
  rows: new Map(),          // table -> [{t, rows}] from the /status polls
  estimates: {},            // table -> {estimate, read, finished}
  sinkColors: new Map(),
  tables: new Set(),        // captured tables offered to the snapshot form
};

// ---- small helpers ----------------------------------------------------------

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'style') Object.assign(node.style, v); // CSSOM: allowed by the page's CSP, inline style is not
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function fmtInt(n) { return n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'); }

function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
}

function fmtDuration(s) {
  if (!isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

function fmtTime(rfc3339) { return rfc3339 ? String(rfc3339).replace('T', ' ') : '—'; }

function clock(t) {
  const d = new Date(t * 1000);
  return d.toTimeString().slice(0, 8);
}

function sinkColor(name) {
  if (!state.sinkColors.has(name)) state.sinkColors.set(name, COLORS[state.sinkColors.size % COLORS.length]);
  return state.sinkColors.get(name);
}

async function getJson(path) {
  const response = await fetch(path, { cache: 'no-store' });
  const text = await response.text();
  if (!response.ok) throw new Error(path + ': HTTP ' + response.status + (text ? ': ' + text.trim() : ''));
  return JSON.parse(text);
}

function setBanner(message) {
  const banner = $('banner');
  banner.hidden = !message;
  banner.textContent = message || '';
}

// ---- source, sinks, snapshot --------------------------------------------------

function renderSource(status) {
  const s = status.source || {};
  const facts = [['kind', s.kind], ['server', s.server]];
  if (s.kind === 'postgres') {
    const slot = s.slot || {};
    facts.push(['server LSN', s.server_lsn], ['slot', s.slot_name + (s.slot ? (slot.active ? ' (active)' : ' (inactive)') : ' (missing)')]);
    if (s.slot) {
      facts.push(['confirmed flush', slot.confirmed_flush_lsn], ['restart LSN', slot.restart_lsn],
        ['retained WAL', slot.retained_wal_bytes === null || slot.retained_wal_bytes === undefined ? '—'
          : fmtBytes(slot.retained_wal_bytes) + ' (' + fmtInt(slot.retained_wal_bytes) + ' bytes)'],
        ['WAL status', slot.wal_status]);
    }
  } else if (s.kind === 'mysql') {
    facts.push(['server position', s.server_position], ['binlog', (s.binlog_file || '—') + ':' + (s.binlog_pos ?? '—')],
      ['GTID', s.gtid], ['oldest binlog', s.oldest_binlog],
      ['binlogs kept', fmtInt(s.binlog_files) + ' files, ' + fmtBytes(s.binlog_bytes)], ['replica server_id', s.server_id]);
  }
  if (s.error) facts.push(['error', s.error]);
  const dl = $('source');
  dl.replaceChildren(...facts.flatMap(([k, v]) => [
    el('dt', { text: k }),
    el('dd', { class: k === 'error' ? 'error-text' : null, 'data-field': k.replace(/ /g, '_'), text: v ?? '—' }),
  ]));
  const warning = $('wal-warning');
  warning.hidden = s.wal_warning !== true;
  warning.textContent = s.wal_warning === true
    ? 'The slot retains more WAL than wal_warn_bytes (' + fmtBytes(s.wal_warn_bytes) + '): a sink is behind or stopped.'
    : '';
  const held = status.held_back_by;
  $('held-back').textContent = held && (status.sinks || []).length > 1
    ? 'source acknowledged up to sink ' + held.sink + ' at ' + (held.position || '—') + (held.detached ? ' (detached)' : '')
    : '';
  const p = status.process;
  $('process').textContent = p ? 'pid ' + p.pid + ' since ' + fmtTime(p.started_at) : 'not running';
}

function sinkState(sink) {
  const badges = [];
  if (sink.error) badges.push(el('span', { class: 'badge bad', title: sink.error, text: 'error' }));
  if (sink.failed) badges.push(el('span', { class: 'badge bad', title: String(sink.failed), text: 'failed' }));
  if (sink.detached) badges.push(el('span', { class: 'badge warn', title: 'since ' + (sink.detached_since || '?'), text: 'detached' }));
  if (sink.paused) badges.push(el('span', { class: 'badge info', text: 'paused' }));
  if (!badges.length) badges.push(el('span', { class: 'badge ok', text: 'ok' }));
  return badges;
}

function renderSinks(status) {
  const rows = (status.sinks || []).map((sink) => {
    const action = sink.paused
      ? el('button', { class: 'small secondary', 'data-action': 'resume', onclick: () => sinkAction(sink.name, 'resume'), text: 'Resume' })
      : el('button', { class: 'small secondary', 'data-action': 'pause', onclick: () => sinkAction(sink.name, 'pause'), text: 'Pause' });
    const lag = sink.lag_seconds === null || sink.lag_seconds === undefined ? '—' : sink.lag_seconds + ' s';
    const txs = sink.lag_transactions === undefined ? null : fmtInt(sink.lag_transactions) + ' txs';
    return el('tr', { 'data-sink': sink.name },
      el('td', { 'data-field': 'name' }, el('span', { class: 'dot', style: { background: sinkColor(sink.name) } }), sink.name),
      el('td', { 'data-field': 'kind', text: sink.kind }),
      el('td', { class: 'mono', 'data-field': 'position', text: sink.position ?? '—' }),
      el('td', { class: 'num', 'data-field': 'events', text: fmtInt(sink.events) }),
      el('td', { class: 'num', 'data-field': 'lag_seconds', text: lag }),
      el('td', { class: 'num', 'data-field': 'lag_bytes', title: txs, text: fmtInt(sink.lag_bytes) }),
      el('td', { 'data-field': 'state' }, sinkState(sink)),
      el('td', { 'data-field': 'committed_at', title: 'last source commit ' + fmtTime(sink.last_commit_at), text: fmtTime(sink.committed_at) }),
      el('td', {}, action));
  });
  $('sinks').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 9, class: 'muted', text: 'no sink' }))]));
}

/// Rows per second over the last RATE_WINDOW_S of /status samples (null: not enough yet).
function rowRate(table, rows, now) {
  const list = state.rows.get(table) || [];
  list.push({ t: now, rows });
  while (list.length > 1 && now - list[0].t > RATE_WINDOW_S) list.shift();
  state.rows.set(table, list);
  const first = list[0];
  const span = now - first.t;
  return span >= 3 ? (rows - first.rows) / span : null;
}

function renderSnapshot(status) {
  const now = Date.now() / 1000;
  const tables = status.snapshot || [];
  const items = tables.map((t) => {
    state.tables.add(t.table);
    const rows = t.rows || 0;
    const live = state.estimates[t.table];
    const estimate = live && live.estimate > 0 ? Math.max(live.estimate, rows) : null;
    const done = t.status === 'done';
    const rate = done ? null : rowRate(t.table, rows, now);
    const fraction = done ? 1 : estimate ? Math.min(rows / estimate, 1) : null;
    const details = [];
    if (!done && rate !== null) details.push(fmtInt(Math.round(rate)) + ' rows/s');
    if (!done && rate > 0 && estimate) details.push('ETA ' + fmtDuration((estimate - rows) / rate));
    if (!done && rate === 0) details.push('stalled');
    const bar = el('div', { class: 'bar' + (done ? ' done' : fraction === null ? ' unknown' : '') },
      el('span', { style: { width: ((fraction ?? 0) * 100).toFixed(1) + '%' } }));
    return el('div', { class: 'table-progress', 'data-table': t.table, 'data-status': t.status },
      el('div', { class: 'label' },
        el('span', { class: 'name', text: t.table }),
        el('span', {},
          el('span', { class: 'badge ' + (done ? 'ok' : t.status === 'running' ? 'info' : ''), text: t.status }),
          el('span', { 'data-field': 'rows', text: fmtInt(rows) }),
          ' / ',
          el('span', { 'data-field': 'estimate', text: done ? fmtInt(rows) : estimate ? fmtInt(estimate) : '?' }),
          ' rows',
          fraction !== null ? el('span', { class: 'muted', 'data-field': 'percent', text: ' · ' + Math.floor(fraction * 100) + '%' }) : null)),
      bar,
      el('div', { class: 'detail', 'data-field': 'rate', text: done ? 'done' : details.join(' · ') || 'measuring…' }));
  });
  $('snapshot').replaceChildren(...(items.length ? items : [el('p', { class: 'muted', text: 'no snapshot' })]));
}

// ---- charts ---------------------------------------------------------------------

/// A round step (1, 2 or 5 times a power of ten) for about four gridlines up to `max`.
function niceStep(max) {
  if (!(max > 0)) return 0.25;
  const raw = max / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5]) if (raw <= m * p) return m * p;
  return 10 * p;
}

function fmtAxis(v) {
  if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + 'M';
  if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + 'k';
  return String(Math.round(v * 100) / 100);
}

/// Draws one line per sink of `field` over the samples into the SVG `node`.
function drawChart(node, field) {
  const W = 600, H = 200, L = 46, R = 10, T = 10, B = 24;
  const samples = state.samples;
  const names = [...new Set(samples.flatMap((s) => Object.keys(s.sinks || {})))];
  const children = [];
  let points = 0;
  if (samples.length === 0) {
    children.push(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'waiting for the first sample…'));
  } else {
    const t0 = samples[0].t, t1 = Math.max(samples[samples.length - 1].t, t0 + 1);
    let max = 0;
    for (const s of samples) for (const n of names) { const v = s.sinks[n]?.[field]; if (v > max) max = v; }
    const step = niceStep(max);
    const lines = Math.max(1, Math.ceil(max / step));
    const top = step * lines;
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    for (let i = 0; i <= lines; i++) {
      const v = step * i;
      children.push(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
      children.push(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmtAxis(v)));
    }
    for (const [i, t] of [[0, t0], [1, (t0 + t1) / 2], [2, t1]]) {
      const anchor = ['start', 'middle', 'end'][i];
      children.push(svg('text', { x: x(t), y: H - 6, 'text-anchor': anchor, class: 'axis' }, clock(t)));
    }
    for (const name of names) {
      let d = '', pen = false, last = null;
      for (const s of samples) {
        const v = s.sinks[name]?.[field];
        if (v === null || v === undefined) { pen = false; continue; }
        d += (pen ? ' L' : ' M') + x(s.t).toFixed(1) + ' ' + y(v).toFixed(1);
        pen = true;
        last = [x(s.t), y(v)];
        points++;
      }
      const color = sinkColor(name);
      if (d) children.push(svg('path', { d: d.trim(), class: 'line', stroke: color, 'data-sink': name }));
      if (last) children.push(svg('circle', { cx: last[0], cy: last[1], r: 3, fill: color }));
    }
  }
  node.replaceChildren(...children);
  node.dataset.points = String(points);
  node.dataset.samples = String(samples.length);
}

function renderCharts() {
  drawChart($('chart-events'), 'events_per_sec');
  drawChart($('chart-lag'), 'lag_seconds');
  const names = [...new Set(state.samples.flatMap((s) => Object.keys(s.sinks || {})))];
  $('legend').replaceChildren(...names.flatMap((n) => [el('span', { class: 'swatch', style: { background: sinkColor(n) } }), n]));
}

async function pollHistory() {
  try {
    const last = state.samples.length ? state.samples[state.samples.length - 1].t : null;
    const data = await getJson('/api/history' + (last === null ? '' : '?since=' + last));
    state.samples.push(...data.samples);
    if (state.samples.length > HISTORY_CAPACITY) state.samples.splice(0, state.samples.length - HISTORY_CAPACITY);
    renderCharts();
  } catch (e) {
    setBanner(String(e.message || e));
  }
}

// ---- signals, log, config ---------------------------------------------------------

function renderSignals(list) {
  const rows = list.map((s) => el('tr', { 'data-signal': s.id },
    el('td', { class: 'mono', text: s.id }),
    el('td', { text: s.type }),
    el('td', { text: s.origin }),
    el('td', { class: 'mono', text: JSON.stringify(s.data) }),
    el('td', {}, el('span', { class: 'badge ' + ({ done: 'ok', failed: 'bad', running: 'info' }[s.status] || ''), text: s.status })),
    el('td', { text: s.detail ?? '' }),
    el('td', { text: fmtTime(s.received_at) }),
    el('td', { text: fmtTime(s.updated_at) })));
  $('signals').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'no signal yet' }))]));
}

async function pollSignals() {
  try {
    const response = await fetch('/api/signals', { cache: 'no-store' });
    if (response.status === 404) {
      $('signals').tBodies[0].replaceChildren(el('tr', {}, el('td', { colspan: 8, class: 'muted', text: 'this outflow serves no /api/signals' })));
      return;
    }
    if (!response.ok) throw new Error('/api/signals: HTTP ' + response.status);
    renderSignals((await response.json()).signals || []);
  } catch (e) {
    setBanner(String(e.message || e));
  }
}

async function pollLog() {
  try {
    const log = await getJson('/api/log');
    const rows = log.entries.map((e) => el('tr', {},
      el('td', { class: 'mono', text: fmtTime(e.time) }),
      el('td', {}, el('span', { class: 'badge ' + (e.level === 'ERROR' ? 'bad' : 'warn'), text: e.level })),
      el('td', { text: e.message }),
      el('td', { class: 'mono', text: Object.entries(e.fields || {}).map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join(' ') }),
    ));
    $('log').tBodies[0].replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 4, class: 'muted', text: 'none since the start' }))]));
    $('log-count').textContent = log.total > log.entries.length ? '(last ' + log.entries.length + ' of ' + log.total + ')' : '';
  } catch (e) {
    setBanner(String(e.message || e));
  }
}

async function loadConfig() {
  try {
    const data = await getJson('/api/config');
    $('config').textContent = data.toml;
    const name = data.config.name;
    $('pipeline-name').textContent = name && name !== 'outflow' ? '· ' + name : '';
    if (name) document.title = name + ' · outflow console';
    for (const t of data.config.source?.tables || []) if (!/[*?]/.test(t)) state.tables.add(t);
    renderTableChoices();
  } catch (e) {
    $('config').textContent = String(e.message || e);
  }
}

function renderTableChoices() {
  const select = $('snapshot-tables');
  const chosen = new Set([...select.selectedOptions].map((o) => o.value));
  const have = [...select.options].map((o) => o.value).join('\n');
  const want = [...state.tables].sort();
  if (have === want.join('\n')) return;
  select.replaceChildren(...want.map((t) => el('option', { value: t, selected: chosen.has(t), text: t })));
}

// ---- the 2-second poll ------------------------------------------------------------

async function pollStatus() {
  try {
    const [status, ready, snapshots] = await Promise.all([
      getJson('/status'),
      fetch('/readyz', { cache: 'no-store' }).then(async (r) => ({ ok: r.ok, text: (await r.text()).trim() })),
      getJson('/api/snapshots').catch(() => ({ tables: {} })),
    ]);
    state.estimates = snapshots.tables || {};
    renderSource(status);
    renderSinks(status);
    renderSnapshot(status);
    renderTableChoices();
    renderCharts();
    const pill = $('ready');
    pill.textContent = ready.ok ? 'ready' : ready.text || 'not ready';
    pill.title = ready.text;
    pill.className = 'pill ' + (ready.ok ? 'ok' : /failed/.test(ready.text) ? 'bad' : 'warn');
    $('updated').textContent = 'updated ' + new Date().toTimeString().slice(0, 8);
    setBanner('');
    state.statusRenders++;
    document.body.dataset.statusRenders = String(state.statusRenders);
  } catch (e) {
    setBanner('cannot read the pipeline state: ' + (e.message || e));
    const pill = $('ready');
    pill.textContent = 'unreachable';
    pill.className = 'pill bad';
  }
}

// ---- actions ------------------------------------------------------------------------

function showResult(ok, text) {
  const result = $('action-result');
  result.className = 'result ' + (ok ? 'ok' : 'bad');
  result.textContent = text;
}

/// POSTs an action; shows the signal id or the error, and returns the id (or null).
async function act(path, body) {
  const token = $('token').value.trim();
  if (!token) {
    showResult(false, 'enter the admin token first ([admin] token of this outflow)');
    return null;
  }
  try {
    const response = await fetch(path, {
      method: 'POST',
      headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
      body: JSON.stringify(body || {}),
    });
    const text = await response.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch (_) { data = { error: text.trim() }; }
    if (response.status === 202 || response.ok) {
      showResult(true, 'accepted: signal ' + (data.id ?? '?'));
      pollSignals();
      pollStatus();
      return data.id ?? null;
    }
    const why = response.status === 404 ? 'this outflow has no ' + path + ' action' : data.error || text.trim();
    showResult(false, 'POST ' + path + ' failed: HTTP ' + response.status + (why ? ': ' + why : ''));
  } catch (e) {
    showResult(false, 'POST ' + path + ' failed: ' + (e.message || e));
  }
  return null;
}

function sinkAction(name, verb) {
  return act('/api/sinks/' + encodeURIComponent(name) + '/' + verb, {});
}

function selectedTables() {
  return [...$('snapshot-tables').selectedOptions].map((o) => o.value);
}

function setUpActions() {
  const token = $('token');
  token.value = sessionStorage.getItem('outflow.token') || '';
  token.addEventListener('input', () => sessionStorage.setItem('outflow.token', token.value));
  $('snapshot-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const tables = selectedTables();
    if (!tables.length) { showResult(false, 'choose the tables to snapshot'); return; }
    const filter = $('snapshot-filter').value.trim();
    act('/api/snapshot', filter ? { tables, filter } : { tables });
  });
  $('snapshot-stop').addEventListener('click', () => {
    const tables = selectedTables();
    act('/api/snapshot/stop', tables.length ? { tables } : {});
  });
  $('tables-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const tables = $('add-tables').value.split(/[\s,]+/).filter(Boolean);
    if (!tables.length) { showResult(false, 'name the tables to add, as schema.table'); return; }
    act('/api/tables', { tables });
  });
}

// ---- start ------------------------------------------------------------------------

function start() {
  setUpActions();
  loadConfig();
  pollStatus();
  pollHistory();
  pollLog();
  pollSignals();
  setInterval(() => { pollStatus(); pollSignals(); }, STATUS_EVERY_MS);
  setInterval(() => { pollHistory(); pollLog(); }, HISTORY_EVERY_MS);
}

start();

// The console's browser test, run by tests/e2e/console.rs against a live
// `outflow run`: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core (installed by scripts/browser-env.sh, whose node_modules
// directory is in OUTFLOW_TEST_BROWSER).
//
//   node tests/browser/console.test.mjs '<json>'
//
// The JSON argument: {"url": "http://127.0.0.1:PORT/", "artifacts": DIR,
// "phase": "view" | "action", "secret": a string that must not be shown,
// and for "action": "token", "tables", "filter", "sink"}.
//
// "view": checks that the sinks, lag and snapshot bars show exactly what the
// /status response the page last rendered says (every /status response is
// recorded through a route), that the snapshot bar has the estimate of
// /api/snapshots and a rate and ETA, that a chart gains a point, that the
// WAL warning and the log show, and that the config masks the secret.
// It also checks that an action without a token, or with a wrong one, shows
// its refusal. "action": submits the snapshot form with the token and the
// filter, waits for the signal id and its row in the signals table, then
// pauses and resumes the sink with its buttons. Screenshots go to DIR. Prints one JSON line of
// results on stdout; any failed check exits 1 with the reason on stderr.
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const args = JSON.parse(process.argv[2]);
const modules = process.env.OUTFLOW_TEST_BROWSER;
assert.ok(modules, 'OUTFLOW_TEST_BROWSER (node_modules of scripts/browser-env.sh) is not set');
const { chromium } = createRequire(join(modules, 'noop.js'))('playwright-core');
mkdirSync(args.artifacts, { recursive: true });

/// Polls `check` (an async function returning a truthy value or throwing)
/// every 200 ms until it succeeds; fails naming `what` after `seconds`.
async function waitFor(what, seconds, check) {
  const deadline = Date.now() + seconds * 1000;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = new Error('not yet: ' + JSON.stringify(value));
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${seconds}s waiting for ${what}: ${last && last.message}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const fmtInt = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
const fmtTime = (t) => (t ? String(t).replace('T', ' ') : '—');

const browser = await chromium.launch({
  executablePath: process.env.OUTFLOW_CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const problems = [];
page.on('pageerror', (e) => problems.push('page error: ' + e.message));
// HTTP errors are the page's to show (a refused action, a route not there):
// only script errors count.
page.on('console', (m) => {
  if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push('console error: ' + m.text());
});
const shot = (name) => page.screenshot({ path: join(args.artifacts, name), fullPage: true });

// Every /status answer the page gets, in order: the n-th render shows the n-th.
const statuses = [];
await page.route('**/status', async (route) => {
  const response = await route.fetch();
  const body = await response.text();
  statuses.push(JSON.parse(body));
  await route.fulfill({ response, body });
});

try {
  const result = args.phase === 'view' ? await view() : await action();
  assert.deepEqual(problems, [], 'the page logged errors');
  console.log(JSON.stringify(result));
} catch (e) {
  await shot(`failed-${args.phase}.png`).catch(() => {});
  console.error(e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function view() {
  const response = await page.goto(args.url);
  assert.equal(response.status(), 200);
  assert.ok(!(await response.text()).includes(args.secret), 'the page source shows the secret');
  await waitFor('two renders of /status', 30, () => page.evaluate(() => Number(document.body.dataset.statusRenders || 0) >= 2));

  // Sinks, lag and snapshot rows as the last rendered /status says. Read in one
  // evaluate: the page cannot render in between.
  const seen = await page.evaluate(() => {
    const text = (root, field) => root.querySelector(`[data-field="${field}"]`)?.textContent ?? null;
    return {
      renders: Number(document.body.dataset.statusRenders),
      sinks: [...document.querySelectorAll('#sinks tr[data-sink]')].map((tr) => ({
        name: tr.dataset.sink, kind: text(tr, 'kind'), position: text(tr, 'position'), events: text(tr, 'events'),
        lag_seconds: text(tr, 'lag_seconds'), lag_bytes: text(tr, 'lag_bytes'), state: text(tr, 'state'),
        committed_at: text(tr, 'committed_at'),
      })),
      tables: [...document.querySelectorAll('#snapshot [data-table]')].map((d) => ({
        table: d.dataset.table, status: d.dataset.status, rows: text(d, 'rows'), estimate: text(d, 'estimate'),
        width: d.querySelector('.bar > span').style.width,
      })),
      slot: document.querySelector('#source [data-field="slot"]')?.textContent,
      walWarning: !document.getElementById('wal-warning').hidden,
    };
  });
  const status = statuses[seen.renders - 1];
  assert.ok(status, `render ${seen.renders} of ${statuses.length} /status answers`);
  assert.deepEqual(seen.sinks, status.sinks.map((s) => ({
    name: s.name, kind: s.kind, position: s.position ?? '—', events: fmtInt(s.events),
    lag_seconds: s.lag_seconds === null || s.lag_seconds === undefined ? '—' : s.lag_seconds + ' s',
    lag_bytes: fmtInt(s.lag_bytes), state: s.detached ? 'detached' : 'ok', committed_at: fmtTime(s.committed_at),
  })), 'the sinks table shows /status');
  const estimates = (await (await page.request.get(new URL('/api/snapshots', args.url).href)).json()).tables;
  assert.deepEqual(seen.tables.map((t) => [t.table, t.status, t.rows]),
    status.snapshot.map((t) => [t.table, t.status, fmtInt(t.rows)]), 'the snapshot bars show /status');
  const running = seen.tables.find((t) => t.status === 'running');
  assert.ok(running, 'a snapshot is running: ' + JSON.stringify(seen.tables));
  const expected = status.snapshot.find((t) => t.table === running.table);
  const estimate = Math.max(estimates[running.table].estimate, expected.rows);
  assert.equal(running.estimate, fmtInt(estimate), 'the bar is out of /api/snapshots\' estimate');
  const percent = parseFloat(running.width);
  assert.ok(Math.abs(percent - expected.rows / estimate * 100) <= 0.05, `the bar's length ${running.width} is rows / estimate`);
  assert.ok(expected.rows > 0 && expected.rows < estimate, `the snapshot is in progress: ${expected.rows} of ${estimate}`);
  assert.ok(seen.slot.startsWith(status.source.slot_name), seen.slot);
  assert.equal(seen.walWarning, status.source.wal_warning === true, 'the WAL warning shows as /status says');

  // A rate and an ETA once the page has a few seconds of samples.
  const rate = await waitFor('the snapshot rate and ETA', 30, async () => {
    const t = await page.locator(`#snapshot [data-table="${running.table}"] [data-field="rate"]`).textContent();
    return /rows\/s · ETA /.test(t) && t;
  });

  // The charts: a new point appears without a reload.
  const points = () => page.evaluate(() => Number(document.getElementById('chart-events').dataset.points || 0));
  const before = await points();
  await waitFor('a new point in the events/s chart', 30, async () => (await points()) > before);
  const after = await points();
  const lines = await page.locator('#chart-lag path.line').count();
  assert.ok(lines >= 1, 'the lag chart has a line per sink');

  // The warnings: the WAL retention warning is in the log panel.
  await waitFor('the WAL warning in the log panel', 30, async () =>
    /retains more WAL than wal_warn_bytes/.test(await page.locator('#log tbody').textContent()));

  // The config, masked.
  await page.locator('#config-panel summary').click();
  const config = await page.locator('#config').textContent();
  assert.ok(config.includes(':****@'), 'the URL password is masked:\n' + config);
  assert.ok(!config.includes(args.secret), 'the config shows the secret:\n' + config);
  assert.ok(!(await page.content()).includes(args.secret), 'the page shows the secret');

  await shot('console-snapshot.png');

  // An action without a token is refused by the page; with a wrong one the
  // server's refusal (or a missing route) shows, in red.
  await page.locator('#snapshot-tables').selectOption([running.table]);
  await page.locator('#snapshot-start').click();
  assert.match(await page.locator('#action-result').textContent(), /enter the admin token first/);
  await page.locator('#token').fill('not-the-token');
  await page.locator('#snapshot-start').click();
  const refused = await waitFor('the refusal of a wrong token', 30, async () => {
    const t = await page.locator('#action-result').textContent();
    return /^POST \/api\/snapshot failed: HTTP 4\d\d/.test(t) && t;
  });
  assert.equal(await page.locator('#action-result').getAttribute('class'), 'result bad');
  return { renders: seen.renders, table: running.table, rows: expected.rows, estimate, rate, points: [before, after], refused };
}

async function action() {
  await page.goto(args.url);
  await waitFor('the captured tables in the snapshot form', 30, async () =>
    (await page.locator('#snapshot-tables option').allTextContents()).includes(args.tables[0]));
  await page.locator('#token').fill(args.token);
  await page.locator('#snapshot-tables').selectOption(args.tables);
  await page.locator('#snapshot-filter').fill(args.filter);
  await page.locator('#snapshot-start').click();
  const result = await waitFor('the answer to the snapshot action', 30, async () => {
    const t = await page.locator('#action-result').textContent();
    return t && t;
  });
  const id = result.match(/^accepted: signal (\S+)$/)?.[1];
  assert.ok(id, 'the action was accepted: ' + result);
  const stored = await page.evaluate(() => sessionStorage.getItem('outflow.token'));
  assert.equal(stored, args.token, 'the token is kept in sessionStorage');
  await waitFor(`signal ${id} in the signals table`, 30, () => page.locator(`#signals tr[data-signal="${id}"]`).count());
  await shot('console-action.png');

  // Pause and resume the sink from its row.
  const sink = page.locator(`#sinks tr[data-sink="${args.sink}"]`);
  const paused = async () => /paused/.test(await sink.locator('[data-field="state"]').textContent());
  await sink.locator('button[data-action="pause"]').click();
  await waitFor(`sink ${args.sink} paused`, 30, paused);
  await shot('console-paused.png');
  await sink.locator('button[data-action="resume"]').click();
  await waitFor(`sink ${args.sink} resumed`, 30, async () => !(await paused()));
  return { id };
}

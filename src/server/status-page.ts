/**
 * The /ui/ status page: one self-contained HTML document (no external assets, so it works offline
 * and under a strict CSP). The page holds no data of its own: everything it shows comes from the
 * API with the bearer token the operator types in (kept in sessionStorage), so it sits behind
 * exactly the same authentication and roles as the API. `/ui/api/latencies` feeds the charts.
 */

import { HttpError } from './http-errors.js';
import { sendJson, sendText, type RequestContext } from './http-io.js';
import type { ServerMetrics } from './metrics.js';

const PAGE = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sandpool</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
  header { background: #1d2330; color: #fff; padding: .6rem 1rem; display: flex; gap: 1rem; align-items: center; }
  header h1 { font-size: 1.1rem; margin: 0; flex: 1; }
  main { padding: 1rem; display: grid; gap: 1rem; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
  section { background: #fff; border-radius: 6px; padding: .8rem 1rem; box-shadow: 0 1px 2px #0002; }
  h2 { font-size: 1rem; margin: .2rem 0 .6rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #e3e6eb; font-variant-numeric: tabular-nums; }
  td.num, th.num { text-align: right; }
  textarea, input, select, button { font: inherit; }
  textarea { width: 100%; min-height: 6rem; font-family: ui-monospace, monospace; box-sizing: border-box; }
  pre { background: #f0f2f5; padding: .5rem; white-space: pre-wrap; word-break: break-all; margin: .2rem 0; min-height: 1.2rem; }
  .muted { color: #6b7280; } .error { color: #b42318; } .ok { color: #067647; }
  svg { width: 100%; height: 140px; display: block; } svg rect { fill: #3b6fd8; } svg text { font-size: 10px; fill: #555; }
  .row { display: flex; gap: .5rem; align-items: center; margin-bottom: .5rem; flex-wrap: wrap; }
</style>
</head>
<body>
<header>
  <h1>sandpool</h1>
  <label>token <input id="token" type="password" size="28" placeholder="bearer token (if required)"></label>
  <span id="status" class="muted">loading…</span>
</header>
<main>
  <section><h2>Pools</h2>
    <table id="pools"><thead><tr><th>pool</th><th>type</th><th>backend</th><th>state</th>
      <th class="num">ready</th><th class="num">allocated</th><th class="num">pending</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Sessions</h2>
    <table id="sessions"><thead><tr><th>pool</th><th>identifier</th><th class="num">age</th><th class="num">idle</th><th class="num">expires in</th></tr></thead><tbody></tbody></table>
  </section>
  <section id="cluster" hidden style="grid-column: 1 / -1"><h2>Cluster members</h2>
    <table id="members"><thead><tr><th>member</th><th>url</th><th>pool</th><th class="num">owned</th><th class="num">ready</th><th class="num">allocated</th><th class="num">pending</th></tr></thead><tbody></tbody></table>
  </section>
  <section><h2>Allocation latency (ms)</h2><div id="alloc-charts"></div></section>
  <section><h2>Execution time (ms)</h2><div id="exec-charts"></div></section>
  <section style="grid-column: 1 / -1"><h2>Run code</h2>
    <div class="row">
      <label>pool <select id="run-pool"></select></label>
      <label>identifier <input id="run-id" size="36"></label>
      <button id="run">Run</button> <span id="run-status" class="muted"></span>
    </div>
    <textarea id="code" spellcheck="false">6 * 7</textarea>
    <div>stdout</div><pre id="out-stdout"></pre>
    <div>stderr</div><pre id="out-stderr"></pre>
    <div>result</div><pre id="out-result"></pre>
    <div id="out-images"></div>
  </section>
</main>
<script>
(function () {
  'use strict';
  var tokenBox = document.getElementById('token');
  tokenBox.value = sessionStorage.getItem('sandpool-token') || '';
  tokenBox.addEventListener('change', function () { sessionStorage.setItem('sandpool-token', tokenBox.value); refresh(); });
  var idBox = document.getElementById('run-id');
  idBox.value = 'ui-' + Array.from(crypto.getRandomValues(new Uint8Array(8)), function (b) { return b.toString(16).padStart(2, '0'); }).join('');
  var base = location.pathname.replace(/\/ui\/.*$/, '');

  function api(path, init) {
    init = init || {};
    var headers = new Headers(init.headers || {});
    if (tokenBox.value) headers.set('authorization', 'Bearer ' + tokenBox.value);
    init.headers = headers;
    return fetch(base + path, init).then(function (r) {
      return r.text().then(function (text) {
        var body = text ? JSON.parse(text) : null;
        if (!r.ok) throw new Error(r.status + ' ' + (body && body.error ? body.error.code + ': ' + body.error.message : text));
        return body;
      });
    });
  }
  function cell(tr, text, cls) { var td = document.createElement('td'); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); }
  function secs(ms) { return ms == null ? '-' : Math.round(ms / 1000) + ' s'; }

  function chart(container, name, samples) {
    var wrap = document.createElement('div');
    var title = document.createElement('div');
    title.textContent = name + ' — ' + samples.length + ' samples';
    wrap.appendChild(title);
    var edges = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, Infinity];
    var counts = edges.map(function () { return 0; });
    samples.forEach(function (v) { for (var i = 0; i < edges.length; i++) if (v <= edges[i]) { counts[i]++; break; } });
    var max = Math.max.apply(null, counts.concat([1]));
    var ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + edges.length * 30 + ' 140');
    svg.setAttribute('data-pool', name);
    counts.forEach(function (c, i) {
      var h = Math.round((c / max) * 110);
      var rect = document.createElementNS(ns, 'rect');
      rect.setAttribute('x', String(i * 30 + 3)); rect.setAttribute('y', String(115 - h));
      rect.setAttribute('width', '24'); rect.setAttribute('height', String(h));
      rect.setAttribute('data-count', String(c));
      var tip = document.createElementNS(ns, 'title'); tip.textContent = '≤ ' + edges[i] + ' ms: ' + c; rect.appendChild(tip);
      svg.appendChild(rect);
      var label = document.createElementNS(ns, 'text');
      label.setAttribute('x', String(i * 30 + 3)); label.setAttribute('y', '130');
      label.textContent = edges[i] === Infinity ? '>' : String(edges[i]);
      svg.appendChild(label);
    });
    wrap.appendChild(svg);
    container.appendChild(wrap);
  }

  /** Cluster mode only (the list is empty otherwise): each member's counts per pool. */
  function refreshCluster() {
    api('/ui/api/cluster').then(function (members) {
      var tbody = document.querySelector('#members tbody');
      tbody.replaceChildren();
      members.forEach(function (m) {
        var names = m.pools ? Object.keys(m.pools) : [];
        if (names.length === 0) names = [null];
        names.forEach(function (name) {
          var tr = document.createElement('tr'), p = name && m.pools[name];
          cell(tr, m.member); cell(tr, m.url); cell(tr, name || (m.pools ? '-' : 'not answering'));
          cell(tr, p ? String(p.owned) : '-', 'num'); cell(tr, p ? String(p.ready) : '-', 'num');
          cell(tr, p ? String(p.allocated) : '-', 'num'); cell(tr, p ? String(p.pending) : '-', 'num');
          tbody.appendChild(tr);
        });
      });
      document.getElementById('cluster').hidden = members.length === 0;
    }, function () { document.getElementById('cluster').hidden = true; });
  }

  var busy = false;
  function refresh() {
    refreshCluster();
    if (busy) return;
    busy = true;
    var status = document.getElementById('status');
    Promise.all([api('/pools'), api('/ui/api/latencies')]).then(function (results) {
      var pools = results[0].value, latencies = results[1];
      var tbody = document.querySelector('#pools tbody');
      tbody.replaceChildren();
      var select = document.getElementById('run-pool');
      var chosen = select.value;
      select.replaceChildren();
      pools.forEach(function (p) {
        var s = p.properties.status, tr = document.createElement('tr');
        tr.setAttribute('data-pool', p.name);
        cell(tr, p.name); cell(tr, p.properties.containerType || '-'); cell(tr, p.backend || '-');
        cell(tr, p.properties.provisioningState + (p.properties.provisioningError ? ': ' + p.properties.provisioningError : ''), p.properties.provisioningState === 'Failed' ? 'state error' : 'state');
        cell(tr, String(s.readySessionCount), 'num ready'); cell(tr, String(s.allocatedSessionCount), 'num allocated'); cell(tr, String(s.pendingSessionCount), 'num pending');
        tbody.appendChild(tr);
        var opt = document.createElement('option'); opt.value = p.name; opt.textContent = p.name; select.appendChild(opt);
      });
      if (chosen) select.value = chosen;
      ['alloc', 'exec'].forEach(function (kind) {
        var box = document.getElementById(kind + '-charts');
        box.replaceChildren();
        Object.keys(latencies).forEach(function (name) { chart(box, name, latencies[name][kind === 'alloc' ? 'allocation' : 'execution']); });
      });
      return Promise.all(pools.map(function (p) {
        return api('/pools/' + encodeURIComponent(p.name) + '/listSessions').then(function (l) { return { pool: p.name, sessions: l.value }; }, function () { return { pool: p.name, sessions: [] }; });
      }));
    }).then(function (lists) {
      var now = Date.now(), tbody = document.querySelector('#sessions tbody');
      tbody.replaceChildren();
      lists.forEach(function (l) {
        l.sessions.forEach(function (s) {
          var tr = document.createElement('tr');
          cell(tr, l.pool); cell(tr, s.identifier);
          cell(tr, secs(now - Date.parse(s.createdAt)), 'num'); cell(tr, secs(now - Date.parse(s.lastAccessedAt)), 'num');
          cell(tr, s.expiresAt ? secs(Date.parse(s.expiresAt) - now) : '-', 'num');
          tbody.appendChild(tr);
        });
      });
      status.textContent = 'updated ' + new Date().toLocaleTimeString();
      status.className = 'ok';
    }).catch(function (e) {
      status.textContent = e.message;
      status.className = 'error';
    }).finally(function () { busy = false; });
  }

  document.getElementById('run').addEventListener('click', function () {
    var pool = document.getElementById('run-pool').value, runStatus = document.getElementById('run-status');
    runStatus.textContent = 'running…';
    ['stdout', 'stderr', 'result'].forEach(function (k) { document.getElementById('out-' + k).textContent = ''; });
    var images = document.getElementById('out-images');
    images.replaceChildren();
    var q = '?identifier=' + encodeURIComponent(idBox.value) + '&api-version=2025-02-02-preview';
    var code = document.getElementById('code').value;
    // Shell pools take the code as their command line.
    api('/pools/' + encodeURIComponent(pool) + '/executions' + q, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ codeInputType: 'Inline', executionType: 'Synchronous', code: code })
    }).then(function (r) {
      runStatus.textContent = r.status;
      runStatus.className = r.status === 'Succeeded' || r.status === '0' ? 'ok' : 'error';
      document.getElementById('out-stdout').textContent = r.result.stdout;
      document.getElementById('out-stderr').textContent = r.result.stderr;
      var value = r.result.executionResult;
      if (value && typeof value === 'object' && value.type === 'image') {
        var img = document.createElement('img');
        img.src = 'data:image/' + (value.format === 'svg' ? 'svg+xml' : value.format) + ';base64,' + value.base64_data;
        img.alt = 'result image';
        images.appendChild(img);
      } else {
        document.getElementById('out-result').textContent = typeof value === 'string' ? value : JSON.stringify(value);
      }
      refresh();
    }).catch(function (e) { runStatus.textContent = e.message; runStatus.className = 'error'; });
  });

  refresh();
  setInterval(refresh, 2000);
})();
</script>
</body>
</html>`;

/** One member's counts per pool, for the cluster table (cluster mode only). */
export type MemberCounts = readonly {
  readonly member: string;
  readonly url: string;
  readonly pools: Readonly<Record<string, { ready: number; allocated: number; pending: number; owned: number }>> | undefined;
}[];

/**
 * Serve the page (`/ui/`), the chart data (`/ui/api/latencies`) and, in cluster mode, every
 * member's counts (`/ui/api/cluster`); Reader role, checked by the dispatcher.
 */
export function createStatusPage(
  metrics: () => ServerMetrics,
  members?: () => Promise<MemberCounts>,
): (ctx: RequestContext) => void | Promise<void> {
  return async (ctx) => {
    const path = ctx.route.param ?? '';
    if (path === '' && !ctx.url.pathname.endsWith('/')) {
      // The page resolves API paths relative to /ui/; send /ui there.
      ctx.res.writeHead(301, { location: `${ctx.url.pathname}/` });
      ctx.res.end();
      return;
    }
    if (path === '' || path === 'index.html') {
      ctx.res.setHeader(
        'content-security-policy',
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'",
      );
      ctx.res.setHeader('x-content-type-options', 'nosniff');
      return sendText(ctx.res, 200, PAGE, 'text/html; charset=utf-8');
    }
    if (path === 'api/latencies') {
      const out: Record<string, { allocation: number[]; execution: number[] }> = {};
      for (const [pool, samples] of metrics().samples)
        out[pool] = { allocation: [...samples.allocation], execution: [...samples.execution] };
      return sendJson(ctx.res, 200, out);
    }
    // Not a cluster member: no rows (the page hides the table).
    if (path === 'api/cluster') return sendJson(ctx.res, 200, members === undefined ? [] : await members());
    throw new HttpError(404, 'NotFound', 'no such status page resource');
  };
}

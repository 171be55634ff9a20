/**
 * `npm run soak -- [--minutes M] [--clients N] [--backends a,b] [--json FILE]`
 *
 * A bounded soak test, not part of `npm test`: N clients run a mixed workload for M minutes against
 * a pool per backend (new and returning identifiers, successful and failing code, timeouts, stops,
 * file round trips where the backend has files). Every 10 s it records latency percentiles per
 * operation, errors by kind, process memory and pool counts; at the end it closes every pool and
 * checks that nothing is left (no live sessions, no leaked handles).
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { SandpoolError, SessionPool, type Backend, type ContainerType } from '../src/index.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '2' },
    clients: { type: 'string', default: '16' },
    backends: { type: 'string', default: 'quickjs,isolated-vm' },
    json: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log('usage: npm run soak -- [--minutes 2] [--clients 16] [--backends quickjs,isolated-vm,container,vm] [--json FILE]');
  process.exit(0);
}
const minutes = Number(values.minutes);
const clients = Number(values.clients);
if (!(minutes > 0 && minutes <= 120) || !(clients >= 1 && clients <= 1000)) {
  console.error('--minutes must be in (0, 120] and --clients in [1, 1000]');
  process.exit(2);
}

interface Subject {
  readonly name: string;
  readonly backend: Backend;
  readonly containerType: ContainerType;
  readonly ok: string;
  readonly fail: string;
  readonly spin: string;
}

async function loadSubject(name: string): Promise<Subject | string> {
  try {
    switch (name) {
      case 'quickjs': {
        const { QuickJSBackend } = await import('../backends/quickjs/index.js');
        return {
          name,
          backend: new QuickJSBackend(),
          containerType: 'NodeLTS',
          ok: 'var n = (globalThis.n ?? 0) + 1; n',
          fail: 'null.x',
          spin: 'while (true) {}',
        };
      }
      case 'isolated-vm': {
        const { IsolatedVMBackend } = await import('../backends/isolated-vm/index.js');
        return {
          name,
          backend: new IsolatedVMBackend(),
          containerType: 'NodeLTS',
          ok: 'var n = (globalThis.n ?? 0) + 1; n',
          fail: 'null.x',
          spin: 'while (true) {}',
        };
      }
      case 'container': {
        const { ContainerBackend } = await import('../backends/container/index.js');
        return {
          name,
          backend: new ContainerBackend(),
          containerType: 'PythonLTS',
          ok: 'n = globals().get("n", 0) + 1\nn',
          fail: '1/0',
          spin: 'while True: pass',
        };
      }
      case 'vm': {
        const { VMBackend } = await import('../backends/vm/index.js');
        return {
          name,
          backend: new VMBackend(),
          containerType: 'PythonLTS',
          ok: 'n = globals().get("n", 0) + 1\nn',
          fail: '1/0',
          spin: 'while True: pass',
        };
      }
      default:
        return `unknown backend "${name}"`;
    }
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

type Op = 'acquire' | 'execute' | 'fail' | 'timeout' | 'stop' | 'file';
const windows: {
  at: number;
  backend: string;
  latencies: Record<string, number[]>;
  rssMb: number;
  heapMb: number;
  live: number;
}[] = [];
const errors = new Map<string, number>();

function percentile(values: number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function soak(subject: Subject): Promise<void> {
  const pool = new SessionPool({
    name: `soak-${subject.name}`,
    backend: subject.backend,
    containerType: subject.containerType,
    readySessionInstances: 4,
    maxConcurrentSessions: 40,
    cooldownPeriodInSeconds: 5,
    limits: { executionTimeoutSeconds: 30, memoryMb: 128 },
  });
  await pool.start();
  const deadline = Date.now() + minutes * 60_000;
  let current = {
    at: Date.now(),
    backend: subject.name,
    latencies: {} as Record<string, number[]>,
    rssMb: 0,
    heapMb: 0,
    live: 0,
  };
  const record = (op: Op, ms: number) => (current.latencies[op] ??= []).push(ms);
  const sampler = setInterval(() => {
    const memory = process.memoryUsage();
    const stats = pool.stats();
    current.rssMb = memory.rss / 2 ** 20;
    current.heapMb = memory.heapUsed / 2 ** 20;
    current.live = stats.ready + stats.allocated + stats.pending;
    windows.push(current);
    current = { at: Date.now(), backend: subject.name, latencies: {}, rssMb: 0, heapMb: 0, live: 0 };
  }, 10_000);

  async function client(index: number): Promise<void> {
    let n = 0;
    while (Date.now() < deadline) {
      // Yield to the event loop between operations, as a client behind a network would: in-process
      // backends answer synchronously, and a pure microtask loop would starve every timer.
      await new Promise((resolve) => setImmediate(resolve));
      n += 1;
      const returning = Math.random() < 0.7;
      const identifier = `soak-${index}-${returning ? n % 3 : n}`;
      try {
        let t = performance.now();
        const session = await pool.acquire(identifier, { wait: true, timeoutMs: 60_000 });
        record('acquire', performance.now() - t);
        const dice = Math.random();
        t = performance.now();
        if (dice < 0.8) {
          await session.execute({ code: subject.ok });
          record('execute', performance.now() - t);
        } else if (dice < 0.87) {
          await session.execute({ code: subject.fail });
          record('fail', performance.now() - t);
        } else if (dice < 0.89) {
          await session.execute({ code: subject.spin, timeoutInSeconds: 0.2 });
          record('timeout', performance.now() - t);
        } else if (dice < 0.92) {
          await session.stop();
          record('stop', performance.now() - t);
        } else if (pool.backend.capabilities.files) {
          await session.uploadFile('soak.txt', 'x'.repeat(4096));
          await session.listFiles();
          record('file', performance.now() - t);
        }
        // One-shot identifiers free their session at once, as agents that delete sessions do.
        if (!returning && session.state === 'Allocated') await session.stop();
      } catch (error) {
        const kind = SandpoolError.is(error) ? error.code : error instanceof Error ? error.name : 'unknown';
        errors.set(`${subject.name} ${kind}`, (errors.get(`${subject.name} ${kind}`) ?? 0) + 1);
      }
    }
  }

  await Promise.all(Array.from({ length: clients }, (_, i) => client(i)));
  clearInterval(sampler);
  windows.push(current);
  await pool.close();
  const after = pool.stats();
  if (after.ready + after.allocated + after.pending !== 0) throw new Error(`${subject.name}: sessions left after close`);
}

const results: string[] = [];
for (const name of values.backends
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean)) {
  const subject = await loadSubject(name);
  if (typeof subject === 'string') {
    console.log(`skip ${name}: ${subject}`);
    continue;
  }
  console.log(`soaking ${name}: ${clients} clients for ${minutes} min`);
  await soak(subject);
  results.push(name);
}

console.log('\nwindow  backend       live  rss MiB heap MiB  op        count    p50 ms    p99 ms');
for (const w of windows) {
  const t = new Date(w.at).toISOString().slice(11, 19);
  for (const [op, values] of Object.entries(w.latencies)) {
    console.log(
      `${t} ${w.backend.padEnd(12)} ${String(w.live).padStart(5)} ${w.rssMb.toFixed(0).padStart(8)} ${w.heapMb.toFixed(0).padStart(8)}  ` +
        `${op.padEnd(8)} ${String(values.length).padStart(6)} ${percentile(values, 0.5).toFixed(2).padStart(9)} ${percentile(values, 0.99).toFixed(2).padStart(9)}`,
    );
  }
}
console.log('\nerrors by kind:', errors.size === 0 ? 'none' : '');
for (const [kind, count] of errors) console.log(`  ${kind}: ${count}`);
const handles = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap');
console.log(
  `\nbackends soaked: ${results.join(', ') || 'none'}; active handles after close: ${handles.length ? handles.join(', ') : 'none'}`,
);
if (values.json !== undefined) {
  writeFileSync(
    values.json,
    JSON.stringify(
      {
        minutes,
        clients,
        windows: windows.map((w) => ({
          ...w,
          latencies: Object.fromEntries(
            Object.entries(w.latencies).map(([k, v]) => [
              k,
              { count: v.length, p50: percentile(v, 0.5), p99: percentile(v, 0.99) },
            ]),
          ),
        })),
        errors: Object.fromEntries(errors),
      },
      null,
      2,
    ),
  );
}

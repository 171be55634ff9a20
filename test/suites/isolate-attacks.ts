/**
 * Attacks on in-process isolate backends (QuickJS, isolated-vm), as data: each is a JavaScript
 * cell plus what its outcome must (not) be. isolate-attack-suite.ts runs them and checks, after
 * each, that the host, a bystander session and a fresh session are all healthy.
 */

import { expect } from 'vitest';

import type { ExecutionOutcome } from '../../src/backend.js';

export interface IsolateAttack {
  readonly id: string;
  readonly title: string;
  /** Cells run one after another on the attacked session. */
  readonly steps: readonly {
    readonly code: string;
    readonly timeoutMs?: number;
    readonly outputMaxBytes?: number;
    /** Wait this long before the step (lets escaped async work fire, if it could). */
    readonly delayMs?: number;
    readonly check?: (outcome: ExecutionOutcome) => void;
  }[];
  /** Test budget; memory bombs on QuickJS are slow. @default 60 000 */
  readonly testMs?: number;
}

/** The whole outcome, cut, as the assertion message: a failing attack shows what happened. */
const show = (o: ExecutionOutcome): string => JSON.stringify(o).slice(0, 2000);
const failed = (o: ExecutionOutcome): void => expect(o.status, show(o)).toBe('Failed');
const timedOut = (o: ExecutionOutcome): void => expect(o, show(o)).toMatchObject({ status: 'Failed', timedOut: true });
const result = (value: unknown) => (o: ExecutionOutcome) =>
  expect(o, show(o)).toMatchObject({ status: 'Succeeded', result: value });

export const ISOLATE_ATTACKS: readonly IsolateAttack[] = [
  {
    id: 'constructor-escape',
    title: 'this.constructor.constructor reaches only the sandbox global',
    steps: [
      { code: "this.constructor.constructor('return typeof process')()", check: result('undefined') },
      {
        code: "const g = this.constructor.constructor('return this')(); [typeof g.process, typeof g.require, typeof g.Buffer, typeof g.module].join()",
        check: result('undefined,undefined,undefined,undefined'),
      },
      { code: "console.log.constructor('return typeof process + typeof require')()", check: result('undefinedundefined') },
    ],
  },
  {
    id: 'prototype-walk',
    title: 'walking prototypes of the provided objects finds no host object',
    steps: [
      {
        code: `const found = [];
for (const start of [console, console.log, setTimeout, globalThis, Object, Function.prototype]) {
  for (let o = start; o; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) {
      let v; try { v = o[k]; } catch { continue; }
      if (v && (typeof v === 'object' || typeof v === 'function') && ('pid' in v || 'mainModule' in v || 'binding' in v)) found.push(k);
    }
  }
}
found.join()`,
        check: result(''),
      },
    ],
  },
  {
    id: 'stack-frames',
    title: 'stack traces expose no host frames or receivers',
    steps: [
      {
        code: `Error.prepareStackTrace = (e, frames) => frames.map((f) => { try { const t = f.getThis(); return t && typeof t.process; } catch { return 'x'; } }).join();
function probe() { return new Error('probe').stack; }
const s = String(probe()); Error.prepareStackTrace = undefined;
/object|function|node:|file:/.test(s) ? 'LEAK ' + s : 'clean'`,
        check: result('clean'),
      },
    ],
  },
  {
    id: 'eval-function',
    title: 'eval, Function and its async/generator siblings compile sandbox code only',
    steps: [
      {
        code: "[eval('typeof process'), Function('return typeof require')(), (function*(){}).constructor('yield typeof module')().next().value].join()",
        check: result('undefined,undefined,undefined'),
      },
      { code: "await (async function(){}).constructor('return typeof process')()", check: result('undefined') },
    ],
  },
  {
    id: 'dynamic-import',
    title: 'dynamic import loads no host module',
    steps: [
      {
        code: "let r; try { await import('node:fs'); r = 'imported'; } catch (e) { r = 'refused'; } r",
        check: (o) => expect(o.result).not.toBe('imported'),
      },
    ],
  },
  {
    id: 'host-globals',
    title: 'no host global exists in the sandbox',
    steps: [
      {
        code: '[typeof process, typeof require, typeof module, typeof exports, typeof Buffer, typeof global, typeof fetch, typeof __dirname, typeof XMLHttpRequest].join()',
        check: result(Array(9).fill('undefined').join()),
      },
      {
        code: 'Object.getOwnPropertyNames(globalThis).filter((n) => /emit|settle|sandpool|checkSource|ivm/i.test(n)).join()',
        check: result(''),
      },
    ],
  },
  {
    id: 'pollution',
    title: 'polluting sandbox built-ins changes neither the host nor the output machinery',
    steps: [
      {
        code: "globalThis.sandpoolPwned = 1; Object.prototype.sandpoolPwned = 1; Array.prototype.join = () => 'hacked'; JSON.stringify = () => 'hacked'; String.prototype.slice = () => 'hacked'; console.log({ a: [1, 2] }); ({ b: 1 })",
        check: (o) => expect(o).toMatchObject({ status: 'Succeeded', stdout: '{ a: [ 1, 2 ] }\n', result: '{"b":1}' }),
      },
      {
        code: "Object.prototype.then = function (r) { r('hijacked'); }; 1",
        check: result(1),
      },
      { code: 'delete Object.prototype.then; 2', check: result(2) },
    ],
  },
  {
    id: 'hostile-result',
    title: 'a result whose inspection throws or never ends is contained',
    steps: [
      { code: "({ get a() { throw new Error('getter'); } })", check: (o) => expect(o.status).toBe('Succeeded') },
      { code: 'new Proxy({}, { ownKeys() { for (;;) {} } })', timeoutMs: 300, check: timedOut },
      { code: "console.log('%d', { [Symbol.toPrimitive]() { for (;;) {} } })", timeoutMs: 300, check: timedOut },
    ],
  },
  {
    id: 'memory-strings',
    title: 'a memory bomb of strings fails the execution',
    testMs: 180_000,
    steps: [{ code: "var hog = []; for (;;) hog.push('x'.repeat(1 << 20) + hog.length)", timeoutMs: 20_000, check: failed }],
  },
  {
    id: 'memory-objects',
    title: 'a memory bomb of small objects fails the execution',
    testMs: 180_000,
    steps: [
      { code: 'var objs = []; for (;;) objs.push({ i: objs.length, s: String(objs.length) })', timeoutMs: 30_000, check: failed },
    ],
  },
  {
    id: 'memory-buffers',
    title: 'a memory bomb of typed arrays fails the execution',
    testMs: 180_000,
    steps: [{ code: 'var bufs = []; for (;;) bufs.push(new Uint8Array(16 << 20))', timeoutMs: 20_000, check: failed }],
  },
  {
    id: 'huge-allocation',
    title: 'one huge allocation fails the execution',
    testMs: 120_000,
    steps: [{ code: 'new ArrayBuffer(2 ** 31 - 1).byteLength', timeoutMs: 10_000, check: failed }],
  },
  {
    id: 'loops',
    title: 'endless loops are interrupted, even ones that catch or finally',
    steps: [
      { code: 'while (true) {}', timeoutMs: 500, check: timedOut },
      { code: 'try { while (true) {} } finally { while (true) {} }', timeoutMs: 500, check: timedOut },
      { code: 'for (;;) { try { for (;;) {} } catch (e) {} }', timeoutMs: 500, check: timedOut },
      { code: 'for (;;) { try { for (;;) {} } finally { continue; } }', timeoutMs: 500, check: timedOut },
    ],
  },
  {
    id: 'recursion',
    title: 'deep recursion and deep nesting fail the execution cleanly',
    steps: [
      { code: 'function r(n) { return r(n + 1) + 1; } r(0)', check: failed },
      { code: 'function r2() { try { return r2(); } catch (e) { return r2(); } } r2()', timeoutMs: 500, check: failed },
      // Runtime compiles of deep nests: V8 copes; QuickJS must refuse them. Either way, no crash.
      { code: "eval('('.repeat(5000) + '1' + ')'.repeat(5000))" },
      { code: "Function('return ' + '['.repeat(5000) + ']'.repeat(5000))()" },
      // V8 may parse this; QuickJS must refuse it before its parser recurses. Either way, no crash.
      { code: `${'- '.repeat(20_000)}1` },
      { code: 'let o = {}; for (let i = 0; i < 1e5; i++) o = { o }; JSON.stringify(o)', check: failed },
      { code: 'let a = []; for (let i = 0; i < 1e5; i++) a = [a]; String(a).length', check: failed },
      { code: 'let d = []; for (let i = 0; i < 1e5; i++) d = [d]; d', check: (o) => expect(typeof o.result).toBe('string') },
    ],
  },
  {
    id: 'outputs',
    title: 'huge outputs and results are cut at the cap',
    steps: [
      {
        code: "for (;;) console.log('x'.repeat(1000))",
        timeoutMs: 300,
        outputMaxBytes: 10_000,
        check: (o) => {
          expect(o).toMatchObject({ status: 'Failed', timedOut: true, stdoutTruncated: true });
          expect(Buffer.byteLength(o.stdout)).toBeLessThan(10_200);
        },
      },
      {
        code: "console.error('y'.repeat(20_000_000))",
        outputMaxBytes: 10_000,
        check: (o) => {
          expect(o.stderrTruncated).toBe(true);
          expect(Buffer.byteLength(o.stderr)).toBeLessThan(10_200);
        },
      },
      {
        code: "'z'.repeat(20_000_000)",
        outputMaxBytes: 10_000,
        check: (o) => expect(String(o.result).length).toBeLessThan(10_200),
      },
    ],
  },
  {
    id: 'microtasks',
    title: 'promise and microtask floods end at the time limit',
    steps: [
      { code: '(function f() { Promise.resolve().then(f); })()', timeoutMs: 300, check: timedOut },
      { code: 'async function spin() { for (;;) await null; } spin(); 1', timeoutMs: 300, check: timedOut },
      { code: '(function q() { queueMicrotask(q); })()', timeoutMs: 300, check: timedOut },
      {
        code: 'await new Promise(() => {})',
        timeoutMs: 5000,
        check: (o) => expect(o).toMatchObject({ status: 'Failed', timedOut: false }),
      },
    ],
  },
  {
    id: 'outliving',
    title: 'async work never outlives its execution',
    steps: [
      {
        code: "setTimeout(() => { globalThis.late = 'ran'; }, 1500); Promise.resolve().then(() => { globalThis.micro = 'ran'; }); 'scheduled'",
        timeoutMs: 500,
        check: timedOut,
      },
      { code: '[typeof late, typeof micro].join()', delayMs: 2000, check: result('undefined,string') },
    ],
  },
  {
    id: 'timers',
    title: 'timer floods are bounded and cleared after a timeout',
    steps: [
      { code: 'function t() { setTimeout(t, 0); } t()', timeoutMs: 300, check: timedOut },
      { code: 'setInterval(() => {}, 1)', timeoutMs: 300, check: timedOut },
      { code: 'for (let i = 0; i < 1e6; i++) setTimeout(() => {}, 1e9)', timeoutMs: 10_000, check: failed },
      {
        code: "setTimeout(() => console.log('tick'), 10); 'after'",
        check: (o) => expect(o).toMatchObject({ result: 'after', stdout: 'tick\n' }),
      },
    ],
  },
  {
    id: 'blocking',
    title: 'blocking primitives cannot hang the session',
    steps: [{ code: 'Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)', timeoutMs: 1000, check: failed }],
  },
];

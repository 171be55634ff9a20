'use strict';
/*
 * The JavaScript kernel: one node:vm context that lives as long as the process, so `var x = 41`
 * in one execution and `x + 1` in the next gives 42. Same contract as python_kernel.py: requests
 * on the control-in fd, answers on control-out, output on fds 1/2 ended by the cell's marker.
 * node:vm's timeout stops synchronous code; an `interrupt` control message (tagged with the cell's
 * marker) rejects an awaited promise. The agent never sends this kernel SIGINT: with breakOnSigint
 * a signal landing just after a cell ended stays pending and breaks the next, healthy cell.
 */

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const util = require('node:util');
const vm = require('node:vm');
const { Writable } = require('node:stream');
const { createRequire } = require('node:module');

const MAX_RESULT_CHARS = 1 << 20;

// Node's own REPL rewrite for top-level await (hoists declarations, returns the last value). It
// is internal (the kernel runs with --expose-internals); without it, cells fall back to a plain
// async wrapper that loses the last value and keeps declarations local.
let processTopLevelAwait = null;
try {
  ({ processTopLevelAwait } = require('internal/repl/await'));
} catch {
  processTopLevelAwait = null;
}

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error(`missing ${name}`);
  return process.argv[i + 1];
}

const ctlIn = Number(arg('--control-in'));
const ctlOut = Number(arg('--control-out'));
const dataDir = arg('--data-dir');
process.chdir(dataDir);

function writeAll(fd, data) {
  const buf = typeof data === 'string' ? Buffer.from(data) : data;
  let offset = 0;
  while (offset < buf.length) {
    try {
      offset += fs.writeSync(fd, buf, offset);
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error;
    }
  }
}

function send(message) {
  writeAll(ctlOut, `${JSON.stringify(message)}\n`);
}

// Console output goes straight to the fds, synchronously, so it is ordered before the marker.
const syncStream = (fd) =>
  new Writable({
    write(chunk, _enc, cb) {
      try {
        writeAll(fd, chunk);
      } catch {}
      cb();
    },
  });
const sessionConsole = new console.Console({ stdout: syncStream(1), stderr: syncStream(2) });

const sandbox = {
  console: sessionConsole,
  process,
  require: createRequire(path.join(dataDir, 'session.js')),
  module: { exports: {} },
  __dirname: dataDir,
  __filename: path.join(dataDir, 'session.js'),
  Buffer,
};
for (const name of [
  'URL',
  'URLSearchParams',
  'TextEncoder',
  'TextDecoder',
  'AbortController',
  'AbortSignal',
  'Event',
  'EventTarget',
  'fetch',
  'Headers',
  'Request',
  'Response',
  'FormData',
  'Blob',
  'structuredClone',
  'queueMicrotask',
  'setTimeout',
  'clearTimeout',
  'setInterval',
  'clearInterval',
  'setImmediate',
  'clearImmediate',
  'performance',
  'crypto',
  'atob',
  'btoa',
  'MessageChannel',
  'BroadcastChannel',
]) {
  if (globalThis[name] !== undefined) sandbox[name] = globalThis[name];
}
const context = vm.createContext(sandbox);
sandbox.exports = sandbox.module.exports;
const sessionState = require('./js_session_state.cjs').create({ vm, context, sandbox });

let currentMarker = null;
let interruptCell = null;
// A SIGINT from outside (a terminal's Ctrl-C) must not kill the kernel: ignore it. Interrupting an
// awaited promise goes through the control channel, tagged with the cell's marker, so a late
// interrupt cannot hit the next cell.
process.on('SIGINT', () => undefined);

class InterruptedError extends Error {}
// Errors thrown later by callbacks the session scheduled must not take the kernel down.
process.on('uncaughtException', (error) => writeAll(2, `Uncaught ${formatError(error)}\n`));
process.on('unhandledRejection', (reason) => writeAll(2, `Unhandled promise rejection: ${formatError(reason)}\n`));

function formatError(error) {
  if (error instanceof Error || (error && typeof error.stack === 'string')) {
    return String(error.stack)
      .split('\n')
      .filter((line) => !line.includes('node:vm') && !line.includes(__filename) && !line.includes('node:internal'))
      .join('\n');
  }
  return util.inspect(error);
}

function toResult(value) {
  if (value === undefined || value === null) return '';
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  const text = typeof value === 'string' ? value : util.inspect(value, { depth: 6, maxArrayLength: 1000, breakLength: 80 });
  return text.length > MAX_RESULT_CHARS ? `${text.slice(0, MAX_RESULT_CHARS)}\n[sandpool: result truncated]` : text;
}

let cellCount = 0;

async function runCell(code, timeoutMs) {
  cellCount += 1;
  const filename = `<cell-${cellCount}>`;
  let script;
  let wrapped = null;
  try {
    script = new vm.Script(code, { filename });
  } catch (error) {
    if (!(error instanceof SyntaxError) || !/await/.test(String(error.message))) throw error;
    const rewritten = processTopLevelAwait ? processTopLevelAwait(code) : null;
    wrapped = rewritten ? 'repl' : 'plain';
    script = new vm.Script(rewritten ?? `(async () => {\n${code}\n})()`, { filename, lineOffset: rewritten ? 0 : -1 });
  }
  sessionState.noteCell(code);
  let value = script.runInContext(context, { timeout: Math.max(1, timeoutMs) });
  if (wrapped || (value !== null && typeof value === 'object' && typeof value.then === 'function')) {
    value = await new Promise((resolve, reject) => {
      interruptCell = reject;
      Promise.resolve(value).then(resolve, reject);
    });
    if (wrapped === 'repl') value = value?.value;
  }
  return value;
}

/** Set one execution's variables in process.env; returns a function that puts the previous values back. */
function setEnvForCell(env) {
  if (env === null || typeof env !== 'object') return () => undefined;
  const previous = new Map(Object.keys(env).map((name) => [name, process.env[name]]));
  Object.assign(process.env, env);
  return () => {
    for (const [name, value] of previous) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}

async function handle(request) {
  const answer = { type: 'result', status: 'Succeeded', interrupted: false, timedOut: false, result: '', images: [] };
  currentMarker = request.marker;
  // Bound to the session: stays. Then this execution's own variables, until it ends.
  if (request.setEnv !== null && typeof request.setEnv === 'object') Object.assign(process.env, request.setEnv);
  const restoreEnv = setEnvForCell(request.env);
  try {
    answer.result = toResult(await runCell(String(request.code), Number(request.timeoutMs) || 60000));
  } catch (error) {
    answer.status = 'Failed';
    const code = error?.code;
    answer.timedOut = code === 'ERR_SCRIPT_EXECUTION_TIMEOUT';
    answer.interrupted = answer.timedOut || code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED' || error instanceof InterruptedError;
    try {
      writeAll(2, `${formatError(error)}\n`);
    } catch {}
  } finally {
    currentMarker = null;
    interruptCell = null;
    restoreEnv();
  }
  for (const fd of [1, 2]) {
    try {
      writeAll(fd, request.marker);
    } catch {}
  }
  send(answer);
}

let buffered = '';
let chain = Promise.resolve();
const control = new net.Socket({ fd: ctlIn, readable: true, writable: false });
control.setEncoding('utf8');
control.on('data', (text) => {
  buffered += text;
  let nl;
  while ((nl = buffered.indexOf('\n')) >= 0) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    let request;
    try {
      request = JSON.parse(line);
    } catch {
      continue;
    }
    if (request && request.type === 'interrupt') {
      if (request.marker === currentMarker && interruptCell) interruptCell(new InterruptedError('Execution interrupted'));
      continue;
    }
    if (request && (request.type === 'checkpoint' || request.type === 'restore' || request.type === 'reseed')) {
      chain = chain.then(() => send(sessionState.handle(request)));
      continue;
    }
    chain = chain.then(() => handle(request));
  }
});
control.on('end', () => process.exit(0));
// Exit when the agent dies (reparented), also when the control pipe's EOF cannot be seen.
const parentPid = process.ppid;
setInterval(() => {
  if (process.ppid !== parentPid) process.exit(1);
}, 1000).unref();
send({ type: 'ready', node: process.version });

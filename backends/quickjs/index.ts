/**
 * `sandpool/backends/quickjs`: JavaScript sessions in QuickJS (WebAssembly), in this process.
 *
 * ```ts
 * import { SessionPool } from 'sandpool';
 * import { QuickJSBackend } from 'sandpool/backends/quickjs';
 * const pool = new SessionPool({ backend: new QuickJSBackend(), containerType: 'NodeLTS' });
 * ```
 *
 * Semantics (shared with `sandpool/backends/isolated-vm`, see backends/support/js-isolate):
 * - Each cell runs as a global script: `var`, `let`, `const`, `class` and functions persist into
 *   the next execution. Re-declaring a top-level `let`/`const` in a later cell is a SyntaxError,
 *   as in a browser console. A cell with a top-level `await` is wrapped in an async function;
 *   its declarations become globals and its last expression is still the result.
 * - `result`: numbers, strings, booleans and null as JSON values (NaN/Infinity become null),
 *   `undefined` as `""`, plain objects and arrays as their JSON text, anything else (Map, class
 *   instances, functions, errors, cycles) as Node-like `util.inspect` text. A promise is awaited.
 * - `console.log/info/debug/dir` go to stdout, `console.error/warn/trace` to stderr, formatted
 *   like Node (`%s %d %i %f %j %o %O %c`). An uncaught error fails the execution with
 *   `Name: message` and the stack in stderr.
 * - Timers: `setTimeout`, `setInterval`, their `clear*` and `queueMicrotask` exist and run
 *   INSIDE the sandbox, driven by the host between steps. Like a Node script, an execution ends
 *   when its result has settled and no timer or job is left; a timer due after the deadline makes
 *   the execution time out. Timers and jobs never outlive their execution.
 * - No host object reaches session code: no `require`, `process`, `Buffer`, `fetch`, module
 *   loading, or host timers.
 *
 * QuickJS specifics and limits:
 * - All sessions share one WebAssembly module (about 100 KiB per idle session, 2 GiB maximum).
 *   Growth of its memory is charged to the session running at the time and capped at that
 *   session's `memoryMb`; QuickJS's own limit counts allocations rather than bytes in this build.
 *   Out of memory loses the session (`sessionState: 'lost'`); others are unaffected.
 * - Executions run on the calling thread: a busy cell blocks the Node event loop until it ends or
 *   the interrupt handler stops it at the deadline (timer waits do not block).
 * - QuickJS's C recursion shares the host thread's stack. `maxStackSizeBytes` (128 KiB) bounds JS
 *   recursion; cells and `eval`/`Function` sources are parsed by acorn first and refused past
 *   `maxSyntaxDepth`; `JSON.stringify` is a JavaScript implementation. `eval` is always indirect
 *   (global scope). If the engine still fails on the host side, every session on that module is
 *   reported lost and new sessions get a fresh module: the host process stays up.
 */

export { QuickJSBackend, QuickJSBackendOptionsSchema, type QuickJSBackendOptions } from './quickjs-backend.js';

/**
 * Top-level `await` for script-mode sessions. Neither QuickJS global eval nor a V8 script accepts
 * `await` outside a function, so a cell that uses it is rewritten (like Node's REPL does) into an
 * async IIFE whose promise is the cell's completion value:
 *
 * - top-level `var`/`let`/`const`/`function`/`class` declarations become sloppy-mode assignments
 *   to globals, so they persist into the next execution like any global;
 * - the last top-level expression statement becomes `return (expr)`, preserving Azure's
 *   "value of the last expression" result.
 *
 * Only cells with an `await` outside every function are rewritten, so every other cell keeps exact
 * script semantics. Everything stays on the cell's own lines so error
 * positions still match the user's code.
 */

import type * as acorn from 'acorn';

type AcornModule = typeof import('acorn');
let acornModule: Promise<AcornModule> | undefined;

/** acorn is only needed for cells that mention `await`; load it on first use. */
function loadAcorn(): Promise<AcornModule> {
  acornModule ??= import('acorn');
  return acornModule;
}

const FUNCTION_TYPES = new Set(['FunctionDeclaration', 'FunctionExpression', 'ArrowFunctionExpression']);

/** True when an `await` (or `for await`) appears outside every function, walked without recursion. */
function hasTopLevelAwait(program: acorn.Program): boolean {
  const stack: unknown[] = [program];
  while (stack.length > 0) {
    const value = stack.pop();
    if (Array.isArray(value)) {
      stack.push(...(value as unknown[]));
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    const node = value as { type?: unknown; await?: unknown } & Record<string, unknown>;
    if (typeof node.type !== 'string' || FUNCTION_TYPES.has(node.type)) continue;
    if (node.type === 'AwaitExpression' || (node.type === 'ForOfStatement' && node.await === true)) return true;
    for (const key of Object.keys(node)) {
      const child = node[key];
      if (typeof child === 'object' && child !== null) stack.push(child);
    }
  }
  return false;
}

interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/**
 * Returns the code to run: unchanged unless it needs top-level await, else the async-IIFE form.
 * A cell that does not parse either way is returned unchanged, so the engine reports the error.
 */
export async function prepareTopLevelAwait(code: string): Promise<string> {
  if (!/\bawait\b/.test(code)) return code;
  const { parse } = await loadAcorn();
  let program: acorn.Program;
  try {
    program = parse(code, { ecmaVersion: 'latest', sourceType: 'script', allowAwaitOutsideFunction: true });
  } catch {
    return code; // Not valid either way: let the engine report the error in its own words.
  }
  // `await (x)` also parses as a call of a function named `await` in a plain script; like Node's
  // REPL, prefer the top-level-await reading whenever one exists outside any function.
  if (!hasTopLevelAwait(program)) return code;
  const edits: Edit[] = [];
  const hoisted: string[] = [];
  const body = program.body;
  body.forEach((stmt, index) => {
    const src = (node: acorn.Node): string => code.slice(node.start, node.end);
    if (stmt.type === 'VariableDeclaration') {
      const parts: string[] = [];
      for (const d of stmt.declarations) {
        if (d.init) parts.push(`(${src(d.id)} = ${src(d.init)})`);
        else if (d.id.type === 'Identifier' && stmt.kind !== 'var') parts.push(`(${d.id.name} = undefined)`);
        else if (d.id.type === 'Identifier')
          parts.push(`(${d.id.name} = typeof ${d.id.name} === 'undefined' ? undefined : ${d.id.name})`);
      }
      edits.push({ start: stmt.start, end: stmt.end, text: parts.length > 0 ? `void (${parts.join(', ')});` : ';' });
    } else if (stmt.type === 'FunctionDeclaration' && stmt.id) {
      // Declarations are hoisted: assign them before any other statement of the cell runs.
      hoisted.push(`${stmt.id.name} = (${src(stmt)});`);
      edits.push({ start: stmt.start, end: stmt.end, text: ';' });
    } else if (stmt.type === 'ClassDeclaration' && stmt.id) {
      edits.push({ start: stmt.start, end: stmt.end, text: `${stmt.id.name} = (${src(stmt)});` });
    } else if (stmt.type === 'ExpressionStatement' && index === body.length - 1) {
      edits.push({ start: stmt.start, end: stmt.end, text: `return (${src(stmt.expression)});` });
    }
  });
  let out = code;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    out = out.slice(0, edit.start) + edit.text + out.slice(edit.end);
  }
  // No `var` prefix for the names: a sloppy-mode assignment creates the global, and also updates a
  // `let`/`class` binding made by an earlier cell, where a `var` would be a redeclaration error.
  return `(async () => { ${hoisted.join(' ')}${out}\n})()`;
}

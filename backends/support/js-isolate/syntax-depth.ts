/**
 * Nesting depth of a cell, measured with acorn before QuickJS sees it. QuickJS's parser recurses
 * in C without checking the stack for some constructs, and a deep enough nest (`((((…` a few
 * hundred levels) overflows the HOST stack through the WebAssembly frames, which corrupts the
 * module every session shares. acorn runs in plain JavaScript on the host, where a stack overflow
 * is an ordinary, catchable RangeError.
 */

import type * as acorn from 'acorn';

type AcornModule = typeof import('acorn');
let acornModule: Promise<AcornModule> | undefined;

export type SyntaxCheck = { readonly ok: true } | { readonly ok: false; readonly message: string };

/** Children reached without a new parser recursion level (left-associative chains, member chains). */
function isIterativeEdge(parent: Record<string, unknown>, key: string): boolean {
  const type = parent['type'];
  if ((type === 'BinaryExpression' || type === 'LogicalExpression') && key === 'left') return true;
  if (type === 'MemberExpression' && key === 'object') return true;
  if (type === 'CallExpression' && key === 'callee') return true;
  return false;
}

/** Deepest nesting of `node`, walked with an explicit stack (no recursion on the host either). */
function astDepth(root: acorn.Node, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[root, 0]];
  while (stack.length > 0) {
    const [value, depth] = stack.pop()!;
    if (depth > max) {
      max = depth;
      if (max > limit) return max;
    }
    if (Array.isArray(value)) {
      for (const item of value) stack.push([item, depth]);
    } else if (typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string') {
      const node = value as Record<string, unknown>;
      for (const key of Object.keys(node)) {
        const child = node[key];
        if (typeof child === 'object' && child !== null) stack.push([child, isIterativeEdge(node, key) ? depth : depth + 1]);
      }
    }
  }
  return max;
}

/** Load acorn once; the synchronous check below needs it loaded. */
export function loadAcorn(): Promise<AcornModule> {
  acornModule ??= import('acorn');
  return acornModule;
}

/** Parse `code` as a script; refuse it when it does not parse or nests deeper than `maxDepth`. */
export async function checkSyntaxDepth(code: string, maxDepth: number): Promise<SyntaxCheck> {
  return checkSyntaxDepthWith(await loadAcorn(), code, maxDepth);
}

/** The same check, synchronous, with acorn already loaded (for calls from inside a sandbox). */
export function checkSyntaxDepthWith(acornLib: AcornModule, code: string, maxDepth: number): SyntaxCheck {
  let program: acorn.Program;
  try {
    program = acornLib.parse(code, {
      ecmaVersion: 'latest',
      sourceType: 'script',
      allowAwaitOutsideFunction: true,
      allowHashBang: true,
      preserveParens: true,
    });
  } catch (error) {
    if (error instanceof RangeError) {
      return { ok: false, message: `SyntaxError: the code nests too deeply (limit ${maxDepth} levels)` };
    }
    // Report the syntax error ourselves: QuickJS must not parse what may be a deep, broken nest.
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, message: `SyntaxError: ${message}` };
  }
  const depth = astDepth(program, maxDepth);
  if (depth > maxDepth) {
    return { ok: false, message: `SyntaxError: the code nests too deeply (more than ${maxDepth} levels)` };
  }
  return { ok: true };
}

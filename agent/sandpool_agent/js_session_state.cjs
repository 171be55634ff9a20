'use strict';
/*
 * Checkpoint and restore of the JavaScript kernel's globals: the interpreter-level pause.
 *
 * What is kept: every global the session created (`var`, implicit globals, `globalThis.x`) and
 * every top-level `let`/`const`/`class` binding (their names are collected from each cell with
 * Node's bundled acorn), when the value is data the structured-clone algorithm keeps exactly
 * (primitives, plain objects, arrays, Map, Set, Date, RegExp, typed arrays, errors), and
 * functions and classes, which are re-created from their source in the global scope (a closure
 * over anything but globals would lose it: such functions are named in the report). Bindings come
 * back as global variables. Everything else (instances of session classes, which would lose their
 * prototype; sockets, timers and other live handles) is named in the report, never dropped silently.
 */

const crypto = require('node:crypto');
const fs = require('node:fs');
const v8 = require('node:v8');

const FORMAT = 1;
const MAX_LOST = 200;

let acorn = null;
try {
  acorn = require('internal/deps/acorn/acorn/dist/acorn'); // the kernel runs with --expose-internals
} catch {
  acorn = null;
}

function lost(name, type, reason) {
  return { language: 'javascript', name: String(name).slice(0, 200), type: String(type).slice(0, 100), reason };
}

/** Top-level lexical names a cell declares (let/const/class), including destructured ones. */
function lexicalNames(code) {
  if (acorn === null) return [];
  let tree;
  try {
    tree = acorn.parse(code, { ecmaVersion: 'latest', sourceType: 'script', allowAwaitOutsideFunction: true });
  } catch {
    return [];
  }
  const names = [];
  const collect = (pattern) => {
    if (!pattern) return;
    if (pattern.type === 'Identifier') names.push(pattern.name);
    else if (pattern.type === 'ObjectPattern')
      for (const p of pattern.properties) collect(p.type === 'RestElement' ? p.argument : p.value);
    else if (pattern.type === 'ArrayPattern') for (const p of pattern.elements) collect(p);
    else if (pattern.type === 'RestElement') collect(pattern.argument);
    else if (pattern.type === 'AssignmentPattern') collect(pattern.left);
  };
  for (const node of tree.body) {
    if (node.type === 'VariableDeclaration' && node.kind !== 'var') for (const d of node.declarations) collect(d.id);
    else if (node.type === 'ClassDeclaration' && node.id) names.push(node.id.name);
  }
  return names;
}

function create({ vm, context, sandbox }) {
  const initialGlobals = new Set(Object.getOwnPropertyNames(sandbox));
  const declared = new Set();
  let baseline = null;
  // The context's own intrinsics: session objects have these prototypes, not the kernel's.
  const intrinsics = vm.runInContext(
    `({ plain: [Object.prototype, null], kinds: new Map([
      [Array.prototype, 'array'], [Map.prototype, 'map'], [Set.prototype, 'set'], [Date.prototype, 'leaf'],
      [RegExp.prototype, 'leaf'], [ArrayBuffer.prototype, 'leaf'], [DataView.prototype, 'leaf'],
      [Error.prototype, 'leaf'], [TypeError.prototype, 'leaf'], [RangeError.prototype, 'leaf'],
      [Number.prototype, 'leaf'], [String.prototype, 'leaf'], [Boolean.prototype, 'leaf'],
      ...['Int8','Uint8','Uint8Clamped','Int16','Uint16','Int32','Uint32','Float32','Float64','BigInt64','BigUint64']
        .map((t) => [globalThis[t + 'Array'].prototype, 'leaf'])]) })`,
    context,
  );
  // Rebuilds a deserialized value (made in the kernel's realm) with the context's constructors, so
  // `x instanceof Array` and friends hold inside the session after a restore.
  const reRealm = vm.runInContext(
    `(function reRealm(value, seen = new Map()) {
      if (value === null || (typeof value !== 'object')) return value;
      if (seen.has(value)) return seen.get(value);
      const tag = Object.prototype.toString.call(value);
      let copy;
      if (Array.isArray(value)) { copy = []; seen.set(value, copy); for (const [i, v] of value.entries()) copy[i] = reRealm(v, seen); return copy; }
      if (tag === '[object Map]') { copy = new Map(); seen.set(value, copy); for (const [k, v] of value) copy.set(reRealm(k, seen), reRealm(v, seen)); return copy; }
      if (tag === '[object Set]') { copy = new Set(); seen.set(value, copy); for (const v of value) copy.add(reRealm(v, seen)); return copy; }
      if (tag === '[object Date]') copy = new Date(value.getTime());
      else if (tag === '[object RegExp]') copy = new RegExp(value.source, value.flags);
      else if (tag === '[object ArrayBuffer]') copy = value.slice(0);
      else if (ArrayBuffer.isView(value)) copy = new globalThis[value.constructor.name](value);
      else if (tag === '[object Error]') { copy = new Error(value.message); copy.stack = value.stack; }
      else if (tag === '[object Object]') { copy = {}; seen.set(value, copy); for (const k of Object.keys(value)) copy[k] = reRealm(value[k], seen); return copy; }
      else copy = value;
      seen.set(value, copy);
      return copy;
    })`,
    context,
  );

  /** Why a value would not come back exactly through structured clone, or null when it would. */
  function unclonable(value, seen = new Set(), depth = 0) {
    if (value === null || typeof value !== 'object') {
      if (typeof value === 'function') return 'a function inside a value';
      if (typeof value === 'symbol') return 'a symbol';
      return null;
    }
    if (seen.has(value)) return null;
    seen.add(value);
    if (depth > 200) return 'nested too deeply';
    const proto = Object.getPrototypeOf(value);
    const kind = intrinsics.plain.includes(proto) ? 'plain' : intrinsics.kinds.get(proto);
    if (kind === undefined)
      return `an instance of ${proto?.constructor?.name ?? 'an unknown class'} (its prototype would be lost)`;
    if (kind === 'leaf') return null;
    const children = kind === 'map' ? [...value.keys(), ...value.values()] : kind === 'set' ? [...value] : Object.values(value);
    for (const child of children) {
      const why = unclonable(child, seen, depth + 1);
      if (why !== null) return why;
    }
    return null;
  }

  function read(name) {
    if (Object.hasOwn(sandbox, name)) return { ok: true, value: sandbox[name] };
    try {
      return { ok: true, value: vm.runInContext(name, context) };
    } catch {
      return { ok: false }; // declared but never initialised (the cell failed first): nothing to keep
    }
  }

  function liveResources() {
    return typeof process.getActiveResourcesInfo === 'function' ? process.getActiveResourcesInfo() : [];
  }

  function checkpoint(path) {
    const names = new Set([...Object.getOwnPropertyNames(sandbox).filter((n) => !initialGlobals.has(n)), ...declared]);
    const values = {};
    const functions = {};
    const report = [];
    for (const name of names) {
      const { ok, value } = read(name);
      if (!ok) continue;
      if (typeof value === 'function') {
        const source = Function.prototype.toString.call(value);
        if (/\{\s*\[native code\]\s*\}$/.test(source))
          report.push(lost(name, 'function', 'a native or bound function has no source'));
        else functions[name] = source;
        continue;
      }
      const why = unclonable(value);
      if (why !== null) {
        report.push(lost(name, typeof value, why));
        continue;
      }
      try {
        v8.serialize(value);
        values[name] = value;
      } catch (error) {
        report.push(lost(name, typeof value, String(error?.message ?? error).slice(0, 300)));
      }
    }
    const extra = [...liveResources()];
    for (const known of baseline ?? []) {
      const at = extra.indexOf(known);
      if (at >= 0) extra.splice(at, 1);
    }
    for (const resource of extra) report.push(lost(resource, 'handle', 'live handles (timers, sockets, servers) are not kept'));
    const payload = v8.serialize({ format: FORMAT, values, functions, lexical: [...declared] });
    fs.writeFileSync(path, payload);
    return {
      saved: Object.keys(values).length + Object.keys(functions).length,
      lost: report.slice(0, MAX_LOST),
      lostCount: report.length,
    };
  }

  function restore(path, fork) {
    const data = v8.deserialize(fs.readFileSync(path));
    if (data === null || typeof data !== 'object' || data.format !== FORMAT)
      throw new Error('not a sandpool JavaScript checkpoint');
    const report = [];
    for (const [name, value] of Object.entries(data.values ?? {})) sandbox[name] = reRealm(value);
    for (const [name, source] of Object.entries(data.functions ?? {})) {
      try {
        sandbox[name] = vm.runInContext(`(${source}\n)`, context);
      } catch (error) {
        report.push(
          lost(name, 'function', `its source does not evaluate on its own: ${String(error?.message ?? error).slice(0, 200)}`),
        );
      }
    }
    if (fork) reseed();
    return { restored: Object.keys(data.values ?? {}).length + Object.keys(data.functions ?? {}).length, lost: report };
  }

  /** V8 seeds Math.random once per process: a copied process (VM fork) draws from the OS instead. */
  function reseed() {
    const pool = new Uint32Array(2048);
    let at = pool.length;
    vm.runInContext('Math', context).random = () => {
      if (at >= pool.length) {
        crypto.randomFillSync(pool);
        at = 0;
      }
      const high = pool[at++] >>> 5; // 27 bits
      const low = pool[at++] >>> 6; // 26 bits
      return (high * 67108864 + low) / 9007199254740992; // a uniform 53-bit fraction in [0, 1)
    };
    return {};
  }

  return {
    noteCell(code) {
      baseline ??= liveResources();
      for (const name of lexicalNames(code)) declared.add(name);
    },
    handle(request) {
      try {
        let report;
        if (request.type === 'checkpoint') report = checkpoint(String(request.path));
        else if (request.type === 'restore') report = restore(String(request.path), request.fork === true);
        else report = reseed();
        return { type: 'result', report };
      } catch (error) {
        return { type: 'result', error: `${error?.name ?? 'Error'}: ${String(error?.message ?? error)}`.slice(0, 2000) };
      }
    },
  };
}

module.exports = { create, lexicalNames };

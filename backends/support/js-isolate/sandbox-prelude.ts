/**
 * JavaScript that runs INSIDE a fresh sandbox (QuickJS context or V8 isolate) before any session
 * code. It evaluates to a function taking host callbacks and returning the private API object the
 * host drives executions with. It installs `console`, timers and `queueMicrotask` as plain sandbox
 * functions.
 *
 * Why the logic lives inside the sandbox: values never cross the boundary as host objects. The host
 * only ever receives strings and numbers (rendered results, error texts, console lines), and the
 * only host functions the sandbox can reach are the callbacks below, whose arguments the host
 * treats as hostile. Console output is buffered in the sandbox (cut at the cap) and drained by the
 * host after each step: a console flood costs no host call per line. Built-ins are captured at start-up, so session code that later replaces
 * `JSON.stringify` or `Array.prototype.join` changes nothing but its own output. The API object is
 * held by the host only; session code cannot reach it.
 *
 * Callbacks: `loadExtras()` returns the source of sandbox-extras.ts, evaluated on first need; `checkSource(source)`
 * (QuickJS only) vets code given to eval/Function. `safeJson` (QuickJS) swaps in a
 * JavaScript JSON.stringify.
 */

export const SANDBOX_PRELUDE = String.raw`(function (loadExtras, safeJson, checkSource) {
'use strict';
var G = globalThis, O = Object, S = String, N = Number, R = Reflect, P = Promise, D = Date;
var apply = R.apply, keysOf = O.keys, create = O.create, getProto = O.getPrototypeOf, now = D.now, sliceStr = S.prototype.slice;
var join = Array.prototype.join, promiseThen = P.prototype.then, promiseResolve = P.resolve;
var isFinite_ = N.isFinite, nativeStringify = JSON.stringify, realEval = G.eval, slice = Array.prototype.slice;
var MapProto = typeof Map === 'function' ? Map.prototype : null, SetProto = typeof Set === 'function' ? Set.prototype : null;
// Everything the extras need, captured now: they load later, maybe after session code tampered.
var K = {
  O: O, S: S, N: N, D: D, P: P, apply: apply, keysOf: keysOf, getProto: O.getPrototypeOf, objectProto: O.prototype,
  isArray: Array.isArray, nativeStringify: nativeStringify, join: join, split: S.prototype.split, sliceStr: sliceStr,
  exec: RegExp.prototype.exec, funcToString: Function.prototype.toString, symToString: Symbol.prototype.toString,
  dateISO: D.prototype.toISOString, dateTime: D.prototype.getTime, reToString: RegExp.prototype.toString,
  isFinite_: isFinite_, isView: ArrayBuffer.isView, MapProto: MapProto, SetProto: SetProto,
  mapForEach: MapProto && MapProto.forEach, setForEach: SetProto && SetProto.forEach,
  mapSize: MapProto && O.getOwnPropertyDescriptor(MapProto, 'size').get,
  setSize: SetProto && O.getOwnPropertyDescriptor(SetProto, 'size').get,
  Map: typeof Map === 'function' ? Map : function () {}, Set: typeof Set === 'function' ? Set : function () {},
  RegExp: RegExp, Error: Error, Boolean: Boolean, safeJson: !!safeJson,
};
var X = null;
function extras() {
  if (X === null) X = realEval(loadExtras())(K);
  return X;
}

// With safeJson (QuickJS), JSON.stringify is replaced by a JavaScript version (in the extras): the
// native one recurses in C without a stack check, and deep nesting would overflow the host's stack
// through the WebAssembly frames. Recursion in JavaScript is checked by the engine and throws.
if (safeJson) {
  O.defineProperty(JSON, 'stringify', {
    value: function stringify(value, replacer, space) { return extras().jsonStringify(value, replacer, space); },
    writable: true,
    configurable: true,
  });
}

// With checkSource (QuickJS), every runtime compile entry point (eval, Function and its async and
// generator siblings) first asks the host to parse the source, for the same host-stack reason as
// the cell check. eval becomes indirect: it always runs in the global scope.
if (typeof checkSource === 'function') {
  var guard = function (source) {
    var problem = checkSource(source);
    if (typeof problem === 'string' && problem !== '') throw new SyntaxError(problem);
  };
  var realEval = G.eval;
  var guardedEval = function (source) {
    if (typeof source !== 'string') return source;
    guard(source);
    return realEval(source);
  };
  O.defineProperty(guardedEval, 'name', { value: 'eval' });
  G.eval = guardedEval;
  var guardCtor = function (Real, prefix, setGlobal) {
    var Guarded = function () {
      var params = [], n = arguments.length;
      for (var i = 0; i < n - 1; i++) params[i] = S(arguments[i]);
      var body = n > 0 ? S(arguments[n - 1]) : '';
      guard('(' + prefix + ' anonymous(' + apply(join, params, [',']) + '\n) {\n' + body + '\n})');
      return R.construct(Real, n > 0 ? apply(slice, arguments, [0]) : []);
    };
    O.defineProperty(Guarded, 'name', { value: Real.name });
    Guarded.prototype = Real.prototype;
    O.defineProperty(Real.prototype, 'constructor', { value: Guarded, writable: true, configurable: true });
    if (setGlobal) G.Function = Guarded;
  };
  guardCtor(Function, 'function', true);
  guardCtor(getProto(async function () {}).constructor, 'async function', false);
  guardCtor(getProto(function* () {}).constructor, 'function*', false);
  guardCtor(getProto(async function* () {}).constructor, 'async function*', false);
}

// Console output per stream (1 stdout, 2 stderr), kept to the cap (in characters, one more than
// the host's byte cap, so the host sees that a cut stream went over).
var outParts = [null, [], []], outChars = [0, 0, 0], outCut = [false, false, false], outCap = 1048577;
function emit(stream, text) {
  if (outCut[stream]) return;
  var room = outCap - outChars[stream];
  if (text.length > room) { text = apply(sliceStr, text, [0, room]); outCut[stream] = true; }
  var parts = outParts[stream];
  parts[parts.length] = text;
  outChars[stream] += text.length;
}

var state = { status: 'fulfilled', value: undefined, error: undefined, token: null };
function fail(e) { if (state.status !== 'uncaught' && state.status !== 'rejected') { state.status = 'uncaught'; state.error = e; } }
K.emit = emit; K.fail = fail; K.now = now; K.create = create; K.slice = slice; K.promiseThen = promiseThen;
K.resolvedPromise = apply(promiseResolve, P, [undefined]);

// console, timers and queueMicrotask live in the extras; these globals load them on first touch
// and then become plain data properties. Session code may overwrite or delete them as usual.
function lazyGlobal(name) {
  var settle = function (value) { O.defineProperty(G, name, { value: value, writable: true, configurable: true }); };
  O.defineProperty(G, name, {
    configurable: true,
    get: function () { var value = extras().globals[name]; settle(value); return value; },
    set: settle,
  });
}
var LAZY = ['console', 'setTimeout', 'setInterval', 'clearTimeout', 'clearInterval', 'queueMicrotask'];
for (var i = 0; i < LAZY.length; i++) lazyGlobal(LAZY[i]);

// Environment variables: the global 'env' is a frozen object of strings, the session's (bindEnv)
// or, during one execution, the session's with that execution's on top (beginEnv/endEnv). The
// property itself stays writable: a session's own 'var env' must keep working.
var jsonParse = JSON.parse, freeze = O.freeze, defineProp = O.defineProperty;
function envObject(base, json) {
  var o = {}, add = function (src) {
    var names = keysOf(src);
    for (var j = 0; j < names.length; j++) {
      var value = src[names[j]];
      if (typeof value === 'string') defineProp(o, names[j], { value: value, enumerable: true, writable: true, configurable: true });
    }
  };
  add(base);
  if (json !== undefined) add(jsonParse(json));
  return freeze(o);
}
var sessionEnv = envObject({}), cellEnv = null;
function showEnv(value) { defineProp(G, 'env', { value: value, writable: true, configurable: true, enumerable: false }); }
showEnv(sessionEnv);

function render(maxChars) {
  var v = state.value;
  switch (typeof v) {
    case 'undefined': return '""';
    case 'boolean': return v ? 'true' : 'false';
    case 'string': return nativeStringify(apply(sliceStr, v, [0, maxChars]));
    case 'number': return isFinite_(v) ? nativeStringify(v) : 'null';
  }
  if (v === null) return 'null';
  return extras().renderObject(v, maxChars);
}

return {
  begin: function (cap) {
    outParts = [null, [], []]; outChars = [0, 0, 0]; outCut = [false, false, false]; outCap = cap;
  },
  drain: function () {
    var text = nativeStringify([apply(join, outParts[1], ['']), apply(join, outParts[2], [''])]);
    outParts = [null, [], []];
    return text;
  },
  settle: function (value) {
    var token = {};
    state = { status: 'fulfilled', value: value, error: undefined, token: token };
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return state.status;
    var then;
    try { then = value.then; } catch (e) { state.status = 'rejected'; state.error = e; return state.status; }
    if (typeof then !== 'function') return state.status;
    state.status = 'pending';
    state.value = undefined;
    try {
      var p = apply(promiseResolve, P, [value]);
      apply(promiseThen, p, [
        function (v) { if (state.token === token && state.status === 'pending') { state.status = 'fulfilled'; state.value = v; } },
        function (e) { if (state.token === token && state.status === 'pending') { state.status = 'rejected'; state.error = e; } },
      ]);
    } catch (e) { state.status = 'rejected'; state.error = e; }
    return state.status;
  },
  fail: function (e) { state.status = 'rejected'; state.error = e; },
  status: function () { return state.status; },
  // Without the extras loaded, no timer can exist.
  nextTimer: function () { return X === null ? -1 : X.nextTimer(); },
  runTimer: function () { return X === null ? 0 : X.runTimer(); },
  clearTimers: function () { if (X !== null) X.clearTimers(); },
  render: render,
  renderError: function () { return extras().renderError(state.error); },
  bindEnv: function (json) {
    var shown = G.env === sessionEnv;
    sessionEnv = envObject(sessionEnv, json);
    if (shown) showEnv(sessionEnv);
  },
  beginEnv: function (json) { cellEnv = envObject(sessionEnv, json); showEnv(cellEnv); },
  // Put the session's back, unless the cell replaced the global with its own value.
  endEnv: function () { if (cellEnv !== null && G.env === cellEnv) showEnv(sessionEnv); cellEnv = null; },
  // drain + status + nextTimer (+ render once the cell is done) in one call: the host crosses
  // into the sandbox once per step instead of four times.
  poll: function (maxChars) {
    var streams = [apply(join, outParts[1], ['']), apply(join, outParts[2], [''])];
    outParts = [null, [], []];
    var next = X === null ? -1 : X.nextTimer();
    var rendered = state.status === 'fulfilled' && next === -1 ? render(maxChars) : null;
    return nativeStringify([state.status, next, streams[0], streams[1], rendered]);
  },
};
})`;

/**
 * The heavier half of the sandbox prelude, loaded lazily INSIDE a sandbox the first time it is
 * needed (the first touch of console, a timer function or queueMicrotask, an object result, an
 * error, JSON.stringify on QuickJS). An idle session never compiles it, which keeps pre-warmed
 * QuickJS sessions small.
 *
 * It evaluates to a function taking the built-ins the core prelude captured at start-up (`K`), so
 * session code that replaced built-ins before the first load changes nothing here.
 */

export const SANDBOX_EXTRAS = String.raw`(function (K) {
'use strict';
var O = K.O, S = K.S, N = K.N, D = K.D, P = K.P, apply = K.apply, keysOf = K.keysOf, getProto = K.getProto;
var objectProto = K.objectProto, isArray = K.isArray, nativeStringify = K.nativeStringify;
var join = K.join, split = K.split, sliceStr = K.sliceStr, exec = K.exec, funcToString = K.funcToString;
var symToString = K.symToString, dateISO = K.dateISO, dateTime = K.dateTime, reToString = K.reToString;
var isFinite_ = K.isFinite_, isView = K.isView, MapProto = K.MapProto, SetProto = K.SetProto;
var mapForEach = K.mapForEach, setForEach = K.setForEach, mapSize = K.mapSize, setSize = K.setSize;
var Map = K.Map, Set = K.Set, RegExp = K.RegExp, Error = K.Error, Boolean = K.Boolean;
var emit = K.emit, fail = K.fail, now = K.now, create = K.create, slice = K.slice;
var IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
var MAX_ITEMS = 100, MAX_DEPTH = 2, MAX_TIMERS = 10000;

// With safeJson (QuickJS), JSON.stringify is replaced by this JavaScript version: the native one
// recurses in C without a stack check, and deep nesting would overflow the host's stack through
// the WebAssembly frames. Recursion in JavaScript is checked by the engine and throws instead.
function jsonStringify(value, replacer, space) {
  var seen = [], indent = '', gap = '', props = null, fn = typeof replacer === 'function' ? replacer : null;
  if (isArray(replacer)) {
    props = [];
    for (var r = 0; r < replacer.length; r++) {
      var item = replacer[r];
      if (typeof item === 'string' || typeof item === 'number' || item instanceof S || item instanceof N) {
        var name = S(item), dup = false;
        for (var d = 0; d < props.length; d++) if (props[d] === name) dup = true;
        if (!dup) props[props.length] = name;
      }
    }
  }
  if (space instanceof N) space = N(space); else if (space instanceof S) space = S(space);
  if (typeof space === 'number') { for (var g = 0; g < 10 && g < space - 0.5; g++) gap += ' '; }
  else if (typeof space === 'string') gap = apply(sliceStr, space, [0, 10]);
  function ser(key, holder) {
    var v = holder[key];
    if (v !== null && (typeof v === 'object' || typeof v === 'bigint')) {
      var toJSON = v.toJSON;
      if (typeof toJSON === 'function') v = apply(toJSON, v, [key]);
    }
    if (fn !== null) v = apply(fn, holder, [key, v]);
    if (typeof v === 'object' && v !== null) {
      if (v instanceof N) v = N(v); else if (v instanceof S) v = S(v); else if (v instanceof Boolean) v = apply(Boolean.prototype.valueOf, v, []);
    }
    if (v === null) return 'null';
    switch (typeof v) {
      case 'boolean': return v ? 'true' : 'false';
      case 'string': return nativeStringify(v);
      case 'number': return isFinite_(v) ? S(v) : 'null';
      case 'bigint': throw new TypeError('Do not know how to serialize a BigInt');
      case 'object': break;
      default: return undefined;
    }
    for (var i = 0; i < seen.length; i++) if (seen[i] === v) throw new TypeError('Converting circular structure to JSON');
    seen[seen.length] = v;
    var outer = indent, parts = [], arr = isArray(v);
    indent += gap;
    var keys = arr ? null : props !== null ? props : keysOf(v), count = arr ? v.length : keys.length;
    for (var k = 0; k < count; k++) {
      var prop = arr ? S(k) : keys[k], text = ser(prop, v);
      if (arr) parts[parts.length] = text === undefined ? 'null' : text;
      else if (text !== undefined) parts[parts.length] = nativeStringify(prop) + (gap === '' ? ':' : ': ') + text;
    }
    seen.length = seen.length - 1;
    var inner = indent;
    indent = outer;
    var open = arr ? '[' : '{', close = arr ? ']' : '}';
    if (parts.length === 0) return open + close;
    if (gap === '') return open + apply(join, parts, [',']) + close;
    return open + '\n' + inner + apply(join, parts, [',\n' + inner]) + '\n' + outer + close;
  }
  return ser('', { '': value });
}
var stringify = K.safeJson ? jsonStringify : nativeStringify;

function isIdent(k) { return apply(exec, IDENT, [k]) !== null; }
function quote(s) {
  var j = nativeStringify(s);
  j = apply(sliceStr, j, [1, j.length - 1]);
  j = apply(join, apply(split, j, ['\\"']), ['"']);
  return "'" + apply(join, apply(split, j, ["'"]), ["\\'"]) + "'";
}
function isError(v) {
  for (var p = v; p !== null; p = getProto(p)) if (p === Error.prototype) return true;
  return false;
}
function errorText(e) {
  var name = S(e.name), message = S(e.message), stack = e.stack;
  var head = message === '' ? name : name + ': ' + message;
  if (typeof stack !== 'string' || stack === '') return head;
  return apply(sliceStr, stack, [0, head.length]) === head ? stack : head + '\n' + stack;
}
function ctorName(v) {
  try { var c = v.constructor; return typeof c === 'function' && typeof c.name === 'string' ? c.name : ''; } catch (e) { return ''; }
}
function inspect(v, depth, seen) {
  switch (typeof v) {
    case 'string': return depth === 0 ? v : quote(v);
    case 'number': return v === 0 && 1 / v < 0 ? '-0' : S(v);
    case 'bigint': return S(v) + 'n';
    case 'boolean': return v ? 'true' : 'false';
    case 'undefined': return 'undefined';
    case 'symbol': return apply(symToString, v, []);
    case 'function': {
      var src = '';
      try { src = apply(funcToString, v, []); } catch (e) {}
      var fname = typeof v.name === 'string' && v.name !== '' ? v.name : '';
      if (apply(sliceStr, src, [0, 5]) === 'class') return '[class ' + (fname || '(anonymous)') + ']';
      return fname ? '[Function: ' + fname + ']' : '[Function (anonymous)]';
    }
  }
  if (v === null) return 'null';
  for (var i = 0; i < seen.length; i++) if (seen[i] === v) return '[Circular]';
  if (isError(v)) return depth === 0 ? errorText(v) : '[' + S(v.name) + ': ' + S(v.message) + ']';
  if (v instanceof D) { var t = apply(dateTime, v, []); return t === t ? apply(dateISO, v, []) : 'Invalid Date'; }
  if (v instanceof RegExp) return apply(reToString, v, []);
  if (v instanceof P) return 'Promise {}';
  var nested = seen.concat([v]);
  var parts = [], n = 0;
  function add(text) { if (n < MAX_ITEMS) parts[parts.length] = text; n++; }
  function finish(open, close, prefix) {
    if (n > MAX_ITEMS) parts[parts.length] = '... ' + (n - MAX_ITEMS) + ' more items';
    return prefix + (parts.length === 0 ? open + close : open + ' ' + apply(join, parts, [', ']) + ' ' + close);
  }
  if (MapProto && v instanceof Map) {
    if (depth > MAX_DEPTH) return '[Map]';
    apply(mapForEach, v, [function (val, key) { add(inspect(key, depth + 1, nested) + ' => ' + inspect(val, depth + 1, nested)); }]);
    return finish('{', '}', 'Map(' + apply(mapSize, v, []) + ') ');
  }
  if (SetProto && v instanceof Set) {
    if (depth > MAX_DEPTH) return '[Set]';
    apply(setForEach, v, [function (val) { add(inspect(val, depth + 1, nested)); }]);
    return finish('{', '}', 'Set(' + apply(setSize, v, []) + ') ');
  }
  if (isArray(v) || isView(v)) {
    var label = isArray(v) ? '' : ctorName(v) + '(' + v.length + ') ';
    if (depth > MAX_DEPTH) return isArray(v) ? '[Array]' : '[' + ctorName(v) + ']';
    var len = v.length;
    for (var k = 0; k < len && k <= MAX_ITEMS; k++) add(inspect(v[k], depth + 1, nested));
    n = len;
    return finish('[', ']', label);
  }
  var proto = getProto(v);
  var name = proto === null ? '[Object: null prototype] ' : proto === objectProto ? '' : (ctorName(v) || 'Object') + ' ';
  if (depth > MAX_DEPTH) return '[' + (name === '' ? 'Object' : apply(sliceStr, name, [0, name.length - 1])) + ']';
  var keys = keysOf(v);
  for (var q = 0; q < keys.length && q <= MAX_ITEMS; q++) {
    var key = keys[q];
    add((isIdent(key) ? key : quote(key)) + ': ' + inspect(v[key], depth + 1, nested));
  }
  n = keys.length;
  return finish('{', '}', name);
}
function safeInspect(v, depth) {
  try { return inspect(v, depth, []); } catch (e) { return '[uninspectable value]'; }
}
function format(args) {
  var out = [], start = 0;
  var first = args[0];
  if (typeof first === 'string' && args.length > 1) {
    var text = '', a = 1;
    for (var i = 0; i < first.length; i++) {
      var c = first[i];
      if (c !== '%' || i + 1 >= first.length) { text += c; continue; }
      var f = first[++i];
      if (f === '%') { text += '%'; continue; }
      if (a >= args.length || 'sdifjoOc'.indexOf(f) < 0) { text += '%' + f; continue; }
      var arg = args[a++];
      if (f === 's') text += typeof arg === 'string' ? arg : safeInspect(arg, 1);
      else if (f === 'd' || f === 'i') text += typeof arg === 'bigint' ? S(arg) + 'n' : S(f === 'i' ? N.parseInt(arg) : N(arg));
      else if (f === 'f') text += S(N.parseFloat(arg));
      else if (f === 'j') { try { text += stringify(arg); } catch (e) { text += '[Circular]'; } }
      else if (f !== 'c') text += safeInspect(arg, 1);
    }
    out[0] = text;
    start = a;
  }
  for (var j = start; j < args.length; j++) out[out.length] = safeInspect(args[j], 0);
  return apply(join, out, [' ']) + '\n';
}

function writer(stream) {
  return function () { emit(stream, format(arguments)); };
}
var log = writer(1), error = writer(2);
var console = {
  log: log, info: log, debug: log, dir: function (v) { emit(1, safeInspect(v, 1) + '\n'); },
  error: error, warn: error, trace: function () { emit(2, 'Trace: ' + format(arguments)); },
  assert: function (ok) { if (!ok) emit(2, 'Assertion failed' + (arguments.length > 1 ? ': ' + format(apply(slice, arguments, [1])) : '\n')); },
};

// Timers live entirely in the sandbox. The host asks for the next due time, sleeps, then runs one
// due timer per call, draining microtasks in between, so nothing here blocks the host.
var timers = create(null), timerCount = 0, nextId = 1, seq = 0;
function addTimer(fn, ms, args, repeat) {
  if (typeof fn !== 'function') throw new TypeError('The "callback" argument must be of type function');
  if (timerCount >= MAX_TIMERS) throw new RangeError('too many pending timers (limit ' + MAX_TIMERS + ')');
  var delay = N(ms);
  if (!(delay >= 1 && delay <= 2147483647)) delay = 1;
  var id = nextId++;
  timers[id] = { fn: fn, args: args, due: now() + delay, seq: seq++, repeat: repeat ? delay : -1 };
  timerCount++;
  return id;
}
function clearTimer(id) { if (typeof id === 'number' && timers[id]) { delete timers[id]; timerCount--; } }
function rest(args, from) { return apply(slice, args, [from]); }
function earliest() {
  var best = null, ids = keysOf(timers);
  for (var i = 0; i < ids.length; i++) {
    var t = timers[ids[i]];
    if (best === null || t.due < best.t.due || (t.due === best.t.due && t.seq < best.t.seq)) best = { id: ids[i], t: t };
  }
  return best;
}
var clearTimeout = function clearTimeout(id) { clearTimer(id); };

return {
  globals: {
    console: console,
    setTimeout: function setTimeout(fn, ms) { return addTimer(fn, ms, rest(arguments, 2), false); },
    setInterval: function setInterval(fn, ms) { return addTimer(fn, ms, rest(arguments, 2), true); },
    clearTimeout: clearTimeout,
    clearInterval: clearTimeout,
    queueMicrotask: function queueMicrotask(fn) {
      if (typeof fn !== 'function') throw new TypeError('The "callback" argument must be of type function');
      apply(K.promiseThen, K.resolvedPromise, [function () { try { fn(); } catch (e) { fail(e); } }]);
    },
  },
  // -1: no timer; else milliseconds until the earliest is due (read the clock once: two reads
  // could straddle the due time and return a negative wait, which would read as "no timer").
  nextTimer: function () { var b = earliest(); if (b === null) return -1; var wait = b.t.due - now(); return wait > 0 ? wait : 0; },
  runTimer: function () {
    var b = earliest();
    if (b === null || b.t.due > now()) return 0;
    if (b.t.repeat >= 0) { b.t.due = now() + b.t.repeat; b.t.seq = seq++; } else { delete timers[b.id]; timerCount--; }
    try { apply(b.t.fn, undefined, b.t.args); } catch (e) { fail(e); }
    return 1;
  },
  clearTimers: function () { timers = create(null); timerCount = 0; },
  jsonStringify: jsonStringify,
  format: format,
  safeInspect: safeInspect,
  renderObject: function (v, maxChars) {
    var text;
    if (typeof v === 'object' && (isArray(v) || getProto(v) === objectProto || getProto(v) === null)) {
      try { text = stringify(v); } catch (e) { text = undefined; }
    }
    if (typeof text !== 'string') text = safeInspect(v, 0);
    return nativeStringify(apply(sliceStr, text, [0, maxChars]));
  },
  renderError: function (e) {
    try {
      if (e !== null && typeof e === 'object' && isError(e)) return errorText(e);
      return 'Uncaught ' + safeInspect(e, 1);
    } catch (err) { return 'Uncaught exception (it could not be rendered)'; }
  },
};
})`;

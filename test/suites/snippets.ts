/**
 * Code the conformance suite runs, per language. Each backend runs the same cases; only the code
 * strings differ. A backend with an unusual runtime can override single snippets.
 */

import type { Language } from '../../src/backend.js';

export interface ConformanceSnippets {
  /** Defines a global `x` = 41 and produces no value. */
  readonly setVar: string;
  /** Evaluates to `x + 1` (42 after setVar). */
  readonly readVar: string;
  /** Evaluates to the integer 42 with no state. */
  readonly resultInt: string;
  /** Produces no value (result ""). */
  readonly resultNone: string;
  /** Evaluates to the string "hello". */
  readonly resultString: string;
  /** Evaluates to an object/dict {a: 1, b: "two"}; its text must mention a, 1, b and two. */
  readonly resultObject: string;
  /** Evaluates to a boolean true. */
  readonly resultBool: string;
  /** Prints "hello stdout" to standard output. */
  readonly stdout: string;
  /** Prints "hello stderr" to standard error. */
  readonly stderr: string;
  /** Raises/throws an error whose message is "boom-conformance". */
  readonly error: string;
  /** Never ends. */
  readonly infiniteLoop: string;
  /** Never ends, and its cleanup block never ends either. */
  readonly infiniteLoopWithFinally: string;
  /** Prints about 200 000 characters. */
  readonly bigOutput: string;
  /** Allocates memory until something gives. */
  readonly memoryBomb: string;
  /** Sets a global `conformance_secret`. */
  readonly setSecret: string;
  /** Evaluates to the string "missing" when `conformance_secret` is not defined, else "present". */
  readonly probeSecret: string;
  /** Increments a global counter `n` (starting at 0) and evaluates to it. */
  readonly increment: string;
  /** Waits two minutes without using the CPU (a sleep, a timer), then evaluates to 1. */
  readonly longWait: string;
  /** Prints "first", waits about a second, prints "second" (streaming must deliver "first" early). */
  readonly streamed: string;
  /** Evaluates to the environment variable SANDPOOL_CONF_ENV, or "" when it is not set. */
  readonly readEnv: string;
}

const javascript: ConformanceSnippets = {
  setVar: 'var x = 41',
  readVar: 'x + 1',
  resultInt: '6 * 7',
  resultNone: 'void 0',
  resultString: "'hel' + 'lo'",
  resultObject: "({ a: 1, b: 'two' })",
  resultBool: '1 < 2',
  stdout: "console.log('hello stdout')",
  stderr: "console.error('hello stderr')",
  error: "throw new Error('boom-conformance')",
  infiniteLoop: 'while (true) {}',
  infiniteLoopWithFinally: 'try { while (true) {} } finally { while (true) {} }',
  bigOutput: "console.log('x'.repeat(200000))",
  memoryBomb: "var hog = []; for (;;) hog.push('x'.repeat(1 << 20) + hog.length)",
  setSecret: "globalThis.conformance_secret = 's3cr3t'",
  probeSecret: "typeof conformance_secret === 'undefined' ? 'missing' : 'present'",
  increment: "var n = (typeof n === 'number' ? n : 0) + 1; n",
  longWait: 'await new Promise((resolve) => setTimeout(resolve, 120000)); 1',
  streamed: "console.log('first'); await new Promise((r) => setTimeout(r, 1000)); console.log('second')",
  // Isolates expose a read-only `env` object; Node.js (containers, VMs) has process.env.
  readEnv: "(typeof env === 'object' ? env : process.env).SANDPOOL_CONF_ENV ?? ''",
};

const python: ConformanceSnippets = {
  setVar: 'x = 41',
  readVar: 'x + 1',
  resultInt: '6 * 7',
  resultNone: 'None',
  resultString: "'hel' + 'lo'",
  resultObject: "{'a': 1, 'b': 'two'}",
  resultBool: '1 < 2',
  stdout: "print('hello stdout')",
  stderr: "import sys\nprint('hello stderr', file=sys.stderr)",
  error: "raise ValueError('boom-conformance')",
  infiniteLoop: 'while True:\n    pass',
  infiniteLoopWithFinally: 'try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass',
  bigOutput: "print('x' * 200000)",
  memoryBomb: 'hog = []\nwhile True:\n    hog.append(bytearray(1 << 24))',
  setSecret: "conformance_secret = 's3cr3t'",
  probeSecret: "'present' if 'conformance_secret' in globals() else 'missing'",
  increment: "n = globals().get('n', 0) + 1\nn",
  longWait: 'import time\ntime.sleep(120)\n1',
  streamed: "import time\nprint('first', flush=True)\ntime.sleep(1)\nprint('second')",
  readEnv: "__import__('os').environ.get('SANDPOOL_CONF_ENV', '')",
};

export const SNIPPETS: Readonly<Partial<Record<Language, ConformanceSnippets>>> = { javascript, python };

/**
 * A sandpool execution as the lines of E2B's code-interpreter stream: `result` lines carrying MIME
 * keys (`text`, `png`, `jpeg`, `svg`) and `is_main_result`, and an `error` line with the
 * exception's `name`, `value` and `traceback`. Jupyter reports an exception apart from stderr;
 * sandpool's kernels print it on stderr, so it is taken from there: the traceback is the last
 * block of stderr, in Python's or Node's standard format.
 */

import type { ImageOutput, Language } from '../../backend.js';
import { ErrorCode } from '../../errors.js';
import type { ExecutionResult } from '../../session-types.js';
import type { JsonValue } from '../../types.js';

export interface E2bExecutionError {
  readonly name: string;
  readonly value: string;
  readonly traceback: string;
}

type E2bResultLine = { readonly type: 'result'; readonly is_main_result: boolean } & Record<string, unknown>;

const TRUNCATED = /\n?\[sandpool: stderr truncated: \d+ more bytes not shown\]\n?$/;
const PY_HEADER = 'Traceback (most recent call last):';
const PY_CHAINED = new Set([
  'During handling of the above exception, another exception occurred:',
  'The above exception was the direct cause of the following exception:',
]);
const PY_EXCEPTION = /^([A-Za-z_][\w.]*)(?::\s?([\s\S]*))?$/;
const JS_EXCEPTION = /^([A-Z][\w$]*(?:Error|Exception)|Error)(?::\s?(.*))?$/;

function lastIndex(lines: readonly string[], before: number, test: (line: string) => boolean): number {
  for (let i = before - 1; i >= 0; i--) if (test(lines[i]!)) return i;
  return -1;
}

interface Split {
  /** stderr without the traceback. */
  readonly stderr: string;
  readonly error: E2bExecutionError;
}

function pythonError(lines: string[], end: number): { start: number; error: E2bExecutionError } | undefined {
  // A SyntaxError raised while compiling the cell has no frames of its own: no header, one File line.
  let frames = lastIndex(lines, end, (l) => l === PY_HEADER);
  if (frames < 0) frames = lastIndex(lines, end, (l) => l.startsWith('  File "'));
  if (frames < 0) return undefined;
  let exc = frames + 1;
  while (exc < end && lines[exc]!.startsWith(' ')) exc++;
  const match = exc < end ? PY_EXCEPTION.exec(lines[exc]!) : null;
  if (match === null) return undefined;
  let start = frames;
  // Chained exceptions: `…\n\nDuring handling of the above exception…:\n\nTraceback…` — walk back.
  while (start >= 3 && lines[start - 1] === '' && PY_CHAINED.has(lines[start - 2]!) && lines[start - 3] === '') {
    const previous = lastIndex(lines, start - 3, (l) => l === PY_HEADER);
    if (previous < 0) break;
    start = previous;
  }
  const value = [match[2] ?? '', ...lines.slice(exc + 1, end)].join('\n');
  // Jupyter's ename is the class name without its module.
  const name = match[1]!.split('.').pop()!;
  return { start, error: { name, value, traceback: lines.slice(start, end).join('\n') } };
}

function javascriptError(lines: string[], end: number): { start: number; error: E2bExecutionError } | undefined {
  const exc = lastIndex(lines, end, (l) => JS_EXCEPTION.test(l));
  if (exc < 0 || lines.slice(exc + 1, end).some((l) => !/^\s+at /.test(l))) return undefined;
  const match = JS_EXCEPTION.exec(lines[exc]!)!;
  // A SyntaxError from compiling the cell is preceded by `<cell-N>:LINE`, the line and a caret.
  const location = lastIndex(lines, exc, (l) => /^<cell-\d+>:\d+$/.test(l));
  const start = location >= 0 && exc - location <= 4 ? location : exc;
  return { start, error: { name: match[1]!, value: match[2] ?? '', traceback: lines.slice(start, end).join('\n') } };
}

/** Separate the exception report from the rest of stderr, for a failed execution. */
export function splitError(stderr: string, language: Language): Split {
  const marker = TRUNCATED.exec(stderr);
  const body = marker === null ? stderr : stderr.slice(0, marker.index);
  const lines = body.split('\n');
  let end = lines.length;
  while (end > 0 && lines[end - 1] === '') end--;
  const found =
    language === 'python' ? pythonError(lines, end) : language === 'javascript' ? javascriptError(lines, end) : undefined;
  if (found === undefined) {
    const last = lines
      .slice(0, end)
      .reverse()
      .find((l) => l.trim() !== '');
    return { stderr, error: { name: 'Error', value: last ?? 'the execution failed', traceback: body.trimEnd() } };
  }
  const before = lines.slice(0, found.start).join('\n');
  return { stderr: `${before}${found.start > 0 ? '\n' : ''}${marker?.[0] ?? ''}`, error: found.error };
}

function isImage(value: JsonValue): value is ImageOutput & { [key: string]: JsonValue } {
  return (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    value['type'] === 'image' &&
    typeof value['base64_data'] === 'string' &&
    (value['format'] === 'png' || value['format'] === 'jpeg' || value['format'] === 'svg')
  );
}

/** A displayed image as E2B's display data: base64 for bitmaps, the XML text for SVG. */
export function displayLine(image: ImageOutput): E2bResultLine {
  const data = image.format === 'svg' ? Buffer.from(image.base64_data, 'base64').toString('utf8') : image.base64_data;
  return { type: 'result', [image.format]: data, is_main_result: false };
}

/** The text/plain of a result value as the language's REPL shows it. */
export function textOf(value: JsonValue, language: Language): string | undefined {
  if (value === '') return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return language === 'python' ? (value ? 'True' : 'False') : String(value);
  // The kernels send NaN and ±Infinity as null.
  if (value === null) return language === 'python' ? 'nan' : 'NaN';
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value);
}

/**
 * `result` lines at the end of a cell: figures not already shown while it ran (display data), then
 * the cell's value. `shown` holds the base64 data of the images already sent.
 */
export function resultLines(
  result: ExecutionResult,
  language: Language,
  shown: ReadonlySet<string> = new Set(),
): E2bResultLine[] {
  const images = isImage(result.result) ? [...result.images, result.result] : result.images;
  const lines: E2bResultLine[] = images.filter((image) => !shown.has(image.base64_data)).map(displayLine);
  if (!isImage(result.result)) {
    const text = textOf(result.result, language);
    if (text !== undefined) lines.push({ type: 'result', text, is_main_result: true });
  }
  return lines;
}

/** The error of a failed execution, and stderr without its traceback. */
export function errorOf(result: ExecutionResult, language: Language): Split | undefined {
  if (result.status !== 'Failed') return undefined;
  if (language === 'shell') {
    const exit = result.exitCode ?? 1;
    return {
      stderr: result.stderr,
      error: { name: 'CommandExitError', value: `exit status ${exit}`, traceback: result.stderr.trimEnd() },
    };
  }
  const split = splitError(result.stderr, language);
  if (result.error?.code === ErrorCode.EXECUTION_TIMEOUT) {
    return { stderr: split.stderr, error: { ...split.error, name: 'TimeoutError', value: result.error.message } };
  }
  return split;
}

/**
 * A code-interpreter execution streamed as E2B's JSON lines while it runs: stdout, stderr and
 * figures go out as the session reports them (`onOutput`), the value and the error at the end.
 *
 * Jupyter reports an exception apart from stderr, while sandpool's kernels print the traceback on
 * stderr as the cell's last output. So the latest stderr piece is held back briefly (at most
 * `HOLD_MS`, and never past other output): when the cell fails, the traceback in it becomes the
 * `error` line instead of stderr text.
 */

import type { ServerResponse } from 'node:http';

import type { Language, OutputChunk } from '../../backend.js';
import type { ExecutionResult } from '../../session-types.js';
import { displayLine, errorOf, resultLines } from './execution-output.js';

const HOLD_MS = 250;

/** JSON lines on a chunked response; writes after the client left are dropped. */
export class LineWriter {
  readonly #res: ServerResponse;

  constructor(res: ServerResponse) {
    this.#res = res;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
  }

  get closed(): boolean {
    return this.#res.destroyed || this.#res.writableEnded;
  }

  write(line: object): void {
    if (!this.closed) this.#res.write(`${JSON.stringify(line)}\n`);
  }

  end(): void {
    if (!this.closed) this.#res.end();
  }
}

/** Where lines go (a LineWriter on the response). */
export interface LineSink {
  write(line: object): void;
}

export class OutputRelay {
  readonly #out: LineSink;
  readonly #shown = new Set<string>();
  #stdout = '';
  #stderr = '';
  #held = '';
  #timer: NodeJS.Timeout | undefined;

  constructor(out: LineSink) {
    this.#out = out;
  }

  /** The session's `onOutput`. */
  readonly onOutput = (chunk: OutputChunk): void => {
    if (chunk.type === 'stderr') {
      this.#flush();
      this.#held = chunk.text;
      this.#timer = setTimeout(() => this.#flush(), HOLD_MS);
      this.#timer.unref();
      return;
    }
    this.#flush();
    if (chunk.type === 'display') {
      this.#shown.add(chunk.image.base64_data);
      this.#out.write(displayLine(chunk.image));
    } else {
      this.#stdout += chunk.text;
      this.#out.write({ type: 'stdout', text: chunk.text, timestamp: new Date().toISOString() });
    }
  };

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#held === '') return;
    this.#stderr += this.#held;
    this.#out.write({ type: 'stderr', text: this.#held, timestamp: new Date().toISOString() });
    this.#held = '';
  }

  /** The cell ended: what was not streamed, stderr without the traceback, figures, value, error. */
  finish(result: ExecutionResult, language: Language): void {
    clearTimeout(this.#timer);
    const timestamp = new Date().toISOString();
    const failure = errorOf(result, language);
    // Output a session reported only in its result (or past what it streamed) is sent now.
    if (result.stdout.startsWith(this.#stdout) && result.stdout.length > this.#stdout.length) {
      this.#out.write({ type: 'stdout', text: result.stdout.slice(this.#stdout.length), timestamp });
    }
    const stderr = failure?.stderr ?? result.stderr;
    // A traceback that had already gone out as stderr (held past HOLD_MS) stays there.
    if (stderr.startsWith(this.#stderr) && stderr.length > this.#stderr.length) {
      this.#out.write({ type: 'stderr', text: stderr.slice(this.#stderr.length), timestamp });
    }
    for (const line of resultLines(result, language, this.#shown)) this.#out.write(line);
    if (failure !== undefined) this.#out.write({ type: 'error', ...failure.error });
  }

  /** The execution did not end normally (aborted, session lost): send what is held, as it is. */
  abandon(): void {
    this.#flush();
  }
}

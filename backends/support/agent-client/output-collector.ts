/**
 * Joins the agent's `output` frames into stdout/stderr while enforcing the per-stream cap on the
 * host side too: a misbehaving agent cannot make the host buffer more than the cap plus a marker.
 */

import type { ExecutionOutcome } from '../../../src/backend.js';
import type { WireOutcome } from './protocol.js';

/** Room for the agent's own truncation marker beyond the cap. */
const MARKER_SLACK = 256;

class StreamBuffer {
  readonly #parts: string[] = [];
  #bytes = 0;
  truncated = false;

  constructor(
    private readonly limit: number,
    private readonly name: string,
  ) {}

  add(data: string): void {
    if (this.truncated) return;
    const size = Buffer.byteLength(data);
    if (this.#bytes + size <= this.limit) {
      this.#parts.push(data);
      this.#bytes += size;
      return;
    }
    // Keep what fits (cut on a character boundary), then mark the cut ourselves.
    const room = this.limit - this.#bytes;
    const head = Buffer.from(data)
      .subarray(0, room)
      .toString('utf8')
      .replace(/\uFFFD$/, '');
    this.#parts.push(head, `\n[sandpool: ${this.name} truncated by the host]\n`);
    this.truncated = true;
  }

  text(): string {
    return this.#parts.join('');
  }
}

export class OutputCollector {
  readonly #stdout: StreamBuffer;
  readonly #stderr: StreamBuffer;

  constructor(outputMaxBytes: number) {
    this.#stdout = new StreamBuffer(outputMaxBytes + MARKER_SLACK, 'stdout');
    this.#stderr = new StreamBuffer(outputMaxBytes + MARKER_SLACK, 'stderr');
  }

  add(stream: 'stdout' | 'stderr', data: string): void {
    (stream === 'stdout' ? this.#stdout : this.#stderr).add(data);
  }

  /** The full outcome; `extraStderr` is a host-side note appended to stderr. */
  finish(outcome: WireOutcome, extraStderr = ''): ExecutionOutcome {
    return {
      ...outcome,
      stdout: this.#stdout.text(),
      stderr: this.#stderr.text() + extraStderr,
      stdoutTruncated: (outcome.stdoutTruncated ?? false) || this.#stdout.truncated,
      stderrTruncated: (outcome.stderrTruncated ?? false) || this.#stderr.truncated,
    };
  }
}

/**
 * Joins the agent's `output` frames into stdout/stderr while enforcing the per-stream cap on the
 * host side too: a misbehaving agent cannot make the host buffer more than the cap plus a marker.
 * Each accepted piece (and each displayed image) is also handed to `onOutput` as it arrives, so
 * the pieces a caller streams, joined, are exactly the final stdout/stderr.
 */

import type { ExecutionOutcome, ImageOutput, OutputChunk } from '../../../src/backend.js';
import type { WireOutcome } from './protocol.js';

/** Room for the agent's own truncation marker beyond the cap. */
const MARKER_SLACK = 256;
/** The agent's own per-execution image limits (agent/PROTOCOL.md), checked again here. */
const MAX_DISPLAYED_IMAGES = 64;
const MAX_DISPLAYED_IMAGE_CHARS = 24 << 20;

class StreamBuffer {
  readonly #parts: string[] = [];
  #bytes = 0;
  truncated = false;

  constructor(
    private readonly limit: number,
    private readonly name: string,
  ) {}

  /** Keeps what fits; returns the text kept (with the host's marker when this piece was cut). */
  add(data: string): string {
    if (this.truncated) return '';
    const size = Buffer.byteLength(data);
    if (this.#bytes + size <= this.limit) {
      this.#parts.push(data);
      this.#bytes += size;
      return data;
    }
    // Keep what fits (cut on a character boundary), then mark the cut ourselves.
    const room = this.limit - this.#bytes;
    const head = Buffer.from(data)
      .subarray(0, room)
      .toString('utf8')
      .replace(/\uFFFD$/, '');
    const kept = `${head}\n[sandpool: ${this.name} truncated by the host]\n`;
    this.#parts.push(kept);
    this.truncated = true;
    return kept;
  }

  text(): string {
    return this.#parts.join('');
  }
}

export class OutputCollector {
  readonly #stdout: StreamBuffer;
  readonly #stderr: StreamBuffer;
  readonly #onOutput: ((chunk: OutputChunk) => void) | undefined;
  #images = 0;
  #imageChars = 0;
  #finished = false;

  constructor(outputMaxBytes: number, onOutput?: (chunk: OutputChunk) => void) {
    this.#stdout = new StreamBuffer(outputMaxBytes + MARKER_SLACK, 'stdout');
    this.#stderr = new StreamBuffer(outputMaxBytes + MARKER_SLACK, 'stderr');
    this.#onOutput = onOutput;
  }

  add(stream: 'stdout' | 'stderr', data: string): void {
    if (this.#finished) return;
    const kept = (stream === 'stdout' ? this.#stdout : this.#stderr).add(data);
    if (kept !== '') this.#deliver({ type: stream, text: kept });
  }

  /** An image the code displayed; past the agent's own limits the rest are dropped. */
  display(image: ImageOutput): void {
    if (this.#finished || this.#onOutput === undefined) return;
    if (this.#images >= MAX_DISPLAYED_IMAGES || this.#imageChars + image.base64_data.length > MAX_DISPLAYED_IMAGE_CHARS) return;
    this.#images += 1;
    this.#imageChars += image.base64_data.length;
    this.#deliver({ type: 'display', image });
  }

  /** The full outcome; `extraStderr` is a host-side note appended to stderr. Nothing is delivered after. */
  finish(outcome: WireOutcome, extraStderr = ''): ExecutionOutcome {
    if (extraStderr !== '') this.#deliver({ type: 'stderr', text: extraStderr });
    this.#finished = true;
    return {
      ...outcome,
      stdout: this.#stdout.text(),
      stderr: this.#stderr.text() + extraStderr,
      stdoutTruncated: (outcome.stdoutTruncated ?? false) || this.#stdout.truncated,
      stderrTruncated: (outcome.stderrTruncated ?? false) || this.#stderr.truncated,
    };
  }

  /** Stop delivering (the execution was aborted or failed). */
  stop(): void {
    this.#finished = true;
  }

  #deliver(chunk: OutputChunk): void {
    if (this.#onOutput === undefined) return;
    try {
      this.#onOutput(chunk);
    } catch {
      // A consumer's failure must not break the frame reader (and with it every call on the connection).
    }
  }
}

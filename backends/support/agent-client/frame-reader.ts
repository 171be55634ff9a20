/**
 * Splits the agent's byte stream into NDJSON frames with a hard size limit. The agent runs inside
 * the sandbox, so a line longer than the limit is a protocol violation, not something to buffer.
 */

const NEWLINE = 0x0a;

export class FrameTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`agent frame exceeds ${limit} bytes`);
  }
}

/** Accumulates chunks and yields complete lines; never holds more than `maxFrameBytes` of a partial line. */
export class FrameReader {
  #parts: Buffer[] = [];
  #partialBytes = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Feed one chunk; returns the complete frames it finished. Throws `FrameTooLargeError`. */
  push(chunk: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (this.#partialBytes + piece.length > this.maxFrameBytes) throw new FrameTooLargeError(this.maxFrameBytes);
      if (this.#parts.length === 0) {
        frames.push(piece);
      } else {
        this.#parts.push(piece);
        frames.push(Buffer.concat(this.#parts, this.#partialBytes + piece.length));
        this.#parts = [];
        this.#partialBytes = 0;
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.#partialBytes + rest.length > this.maxFrameBytes) throw new FrameTooLargeError(this.maxFrameBytes);
      // Copy: the caller's chunk buffer may be reused by the stream implementation.
      this.#parts.push(Buffer.from(rest));
      this.#partialBytes += rest.length;
    }
    return frames;
  }
}

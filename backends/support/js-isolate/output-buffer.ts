/**
 * A per-stream output collector with a hard cap in UTF-8 bytes. Session code is hostile: it may
 * print gigabytes in a loop, so the buffer stops growing at the cap, remembers that it cut, and
 * ignores everything after. The text it returns ends with a visible marker when it was cut.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Appended to a stream that was cut at its cap, so a reader cannot mistake it for the full output. */
export function truncationMarker(maxBytes: number): string {
  return `\n[output truncated: exceeded ${maxBytes} bytes]\n`;
}

/** Longest prefix of `text` whose UTF-8 encoding fits in `maxBytes`, never splitting a code point. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (maxBytes <= 0) return '';
  // Every UTF-16 unit takes at least one byte, so `maxBytes` units are always enough to fill the cap.
  let head = text.length > maxBytes ? text.slice(0, maxBytes) : text;
  const last = head.charCodeAt(head.length - 1);
  if (head.length < text.length && last >= 0xd800 && last <= 0xdbff) head = head.slice(0, -1);
  const bytes = encoder.encode(head);
  if (bytes.length <= maxBytes) return head;
  let end = maxBytes;
  // Step back over UTF-8 continuation bytes (10xxxxxx) so the cut lands on a code point boundary.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return decoder.decode(bytes.subarray(0, end));
}

export class OutputBuffer {
  readonly #maxBytes: number;
  #chunks: string[] = [];
  #bytes = 0;
  #truncated = false;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  get truncated(): boolean {
    return this.#truncated;
  }

  /**
   * Add text; anything past the cap is dropped and the buffer is marked as cut. Returns the text
   * kept (with the truncation marker when this write was cut), which is what a live reader is given.
   */
  write(text: string): string {
    if (this.#truncated || text.length === 0) return '';
    const room = this.#maxBytes - this.#bytes;
    const size = Buffer.byteLength(text, 'utf8');
    if (size <= room) {
      this.#chunks.push(text);
      this.#bytes += size;
      return text;
    }
    const kept = utf8Prefix(text, room) + truncationMarker(this.#maxBytes);
    this.#chunks.push(kept);
    this.#bytes = this.#maxBytes;
    this.#truncated = true;
    return kept;
  }

  /** The collected text, with the truncation marker when output was cut. */
  text(): string {
    return this.#chunks.join('');
  }
}

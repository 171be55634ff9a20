/** The tail of a container's output, to explain a container that died before it was Ready. */

import type Docker from 'dockerode';

/** Mask secret values (resolved env of custom containers) in text that leaves the backend. */
export function redact(text: string, secrets: readonly string[]): string {
  return secrets.reduce((out, secret) => out.split(secret).join('***'), text);
}

export async function containerLogTail(container: Docker.Container): Promise<string> {
  try {
    const buffer = (await container.logs({ stdout: true, stderr: true, tail: 20, follow: false })) as unknown as Buffer;
    const text = demuxLogs(buffer).trim();
    return text === '' ? '' : `\n--- container output (last lines) ---\n${text.slice(-2000)}`;
  } catch {
    return '';
  }
}

/** Docker's multiplexed log format: 8-byte headers (stream, size) before each chunk; raw otherwise. */
function demuxLogs(buffer: Buffer): string {
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length && buffer[offset]! <= 2 && buffer.readUInt16BE(offset + 1) === 0) {
    const size = buffer.readUInt32BE(offset + 4);
    parts.push(buffer.subarray(offset + 8, offset + 8 + size));
    offset += 8 + size;
  }
  return offset === 0 ? buffer.toString('utf8') : Buffer.concat(parts).toString('utf8');
}

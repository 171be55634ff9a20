/**
 * Is this upload body multipart, and with which boundary? The Content-Type says so for most
 * clients. Semantic Kernel's Python plugin shares one httpx client between calls and sets
 * `Content-Type: application/json` on it for executions; httpx then keeps that header on the
 * next upload (a client header wins over the one it computes for `files=`), so the multipart body
 * arrives labelled JSON and without its boundary. Azure accepts it; so do we: a body whose first
 * line is `--<boundary>` (RFC 2046) is parsed as multipart with that boundary.
 */

import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';

/** RFC 2046 boundary characters; at most 70, not ending in a space. */
const FIRST_LINE = /^--([0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?])\r\n/;
const SNIFF_BYTES = 128;

export interface MultipartBody {
  /** The Content-Type to parse with (the declared one, or one with the sniffed boundary). */
  readonly contentType: string;
  /** Where the body's bytes come from: the request itself, or the sniffed head then the rest. */
  readonly source: Readable;
}

/** The multipart body of `req`, or undefined when it is neither declared nor shaped as one. */
export async function multipartBody(req: IncomingMessage): Promise<MultipartBody | undefined> {
  const declared = req.headers['content-type'] ?? '';
  if (/^multipart\/form-data/i.test(declared)) return { contentType: declared, source: req };
  const head = await readHead(req, SNIFF_BYTES);
  const match = FIRST_LINE.exec(head.toString('latin1'));
  const source = new PassThrough();
  source.write(head);
  if (req.readableEnded) source.end();
  else req.pipe(source);
  if (match === null) {
    source.resume(); // nothing will parse it: let the request drain
    return undefined;
  }
  return { contentType: `multipart/form-data; boundary="${match[1]}"`, source };
}

/** Up to `bytes` bytes from the start of the stream (fewer if it ends first), consumed from it. */
function readHead(stream: Readable, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const finish = (): void => {
      stream.off('readable', onReadable);
      stream.off('end', finish);
      stream.off('close', finish);
      // Whole chunks: the head may run past `bytes`; the caller replays all of it, in order.
      resolve(Buffer.concat(chunks));
    };
    const onReadable = (): void => {
      for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null) {
        chunks.push(chunk);
        total += chunk.length;
        if (total >= bytes) {
          finish();
          return;
        }
      }
    };
    stream.on('readable', onReadable);
    stream.once('end', finish);
    stream.once('close', finish);
    onReadable();
  });
}

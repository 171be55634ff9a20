import { InvalidRequestError } from '../errors.js';

export type ByteSource = Uint8Array | string | AsyncIterable<Uint8Array | string> | Iterable<Uint8Array>;

/** Adapt the data forms `uploadFile` accepts to one stream of byte chunks, without buffering. */
export async function* toByteChunks(data: ByteSource): AsyncIterable<Uint8Array> {
  if (typeof data === 'string') {
    yield Buffer.from(data, 'utf8');
    return;
  }
  if (data instanceof Uint8Array) {
    yield data;
    return;
  }
  if (data !== null && typeof data === 'object' && (Symbol.asyncIterator in data || Symbol.iterator in data)) {
    for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
      if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
      else if (chunk instanceof Uint8Array) yield chunk;
      else throw new InvalidRequestError('upload data yielded a chunk that is neither bytes nor a string');
    }
    return;
  }
  throw new InvalidRequestError('upload data must be a string, a Uint8Array, or an (async) iterable of byte chunks');
}

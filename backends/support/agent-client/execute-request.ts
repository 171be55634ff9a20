/** Host-side checks of an execution request, mirroring the agent's limits (agent/PROTOCOL.md). */

import type { ExecuteRequest } from '../../../src/backend.js';
import { parseEnvironment } from '../../../src/environment.js';
import { InvalidRequestError } from '../../../src/errors.js';

const MAX_CODE_BYTES = 4 << 20;
const MAX_OUTPUT_BYTES = 64 << 20;

/** Throws InvalidRequestError for a request the agent would refuse, before anything is sent. */
export function validateExecute(request: ExecuteRequest): void {
  const { language, code, timeoutMs, outputMaxBytes } = request;
  if (language !== 'python' && language !== 'javascript' && language !== 'shell') {
    throw new InvalidRequestError(`unsupported language ${String(language)}`);
  }
  if (typeof code !== 'string' || Buffer.byteLength(code) > MAX_CODE_BYTES) {
    throw new InvalidRequestError(`code must be a string of at most ${MAX_CODE_BYTES} bytes`);
  }
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > 86_400_000) {
    throw new InvalidRequestError('timeoutMs must be an integer between 1 and 86400000');
  }
  if (!Number.isInteger(outputMaxBytes) || outputMaxBytes < 1 || outputMaxBytes > MAX_OUTPUT_BYTES) {
    throw new InvalidRequestError(`outputMaxBytes must be an integer between 1 and ${MAX_OUTPUT_BYTES}`);
  }
  if (request.argv !== undefined && (language !== 'shell' || request.argv.length === 0 || request.argv.length > 4096)) {
    throw new InvalidRequestError('argv is for shell executions and needs 1 to 4096 entries');
  }
  if (request.stdin !== undefined && (language !== 'shell' || Buffer.byteLength(request.stdin) > MAX_CODE_BYTES)) {
    throw new InvalidRequestError('stdin is for shell executions and is limited to 4 MiB');
  }
  parseEnvironment(request.env, 'env');
}

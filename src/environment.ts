/**
 * Environment variables given to a session (at acquire) or to one execution. The same rules hold on
 * every backend and match the in-sandbox agent's (agent/PROTOCOL.md): a process environment must fit
 * next to argv when a kernel or command starts, so count and size are bounded.
 *
 * Values are secrets (API keys, tokens): no error message, log record or event ever quotes one.
 * Names are not secret and may appear in messages.
 */

import { InvalidRequestError } from './errors.js';

/** Variables as `NAME → value`. */
export type Environment = Readonly<Record<string, string>>;

export const ENVIRONMENT_LIMITS = Object.freeze({
  /** Most variables in one environment. */
  maxVariables: 256,
  /** Longest name, in characters. */
  maxNameLength: 256,
  /** Sum of names and UTF-8 values (plus `=` and NUL per variable), in bytes. */
  maxBytes: 256 * 1024,
});

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Check an environment from a caller; returns a frozen copy (undefined stays undefined).
 * @throws {InvalidRequestError} naming the problem and, at most, the variable's name
 */
export function parseEnvironment(value: unknown, what = 'env'): Environment | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidRequestError(`${what} must be an object mapping variable names to string values`);
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length > ENVIRONMENT_LIMITS.maxVariables) {
    throw new InvalidRequestError(
      `${what} has ${entries.length} variables; at most ${ENVIRONMENT_LIMITS.maxVariables} are allowed`,
    );
  }
  const out: Record<string, string> = Object.create(null);
  let bytes = 0;
  for (const [name, text] of entries) {
    if (!NAME.test(name) || name.length > ENVIRONMENT_LIMITS.maxNameLength) {
      throw new InvalidRequestError(
        `${what}: variable names must match [A-Za-z_][A-Za-z0-9_]* and be at most ${ENVIRONMENT_LIMITS.maxNameLength} characters (got ${JSON.stringify(name.slice(0, 64))})`,
      );
    }
    if (typeof text !== 'string' || text.includes('\0') || LONE_SURROGATE.test(text)) {
      throw new InvalidRequestError(`${what}: the value of ${name} must be a string of Unicode text without NUL characters`);
    }
    bytes += name.length + Buffer.byteLength(text) + 2;
    out[name] = text;
  }
  if (bytes > ENVIRONMENT_LIMITS.maxBytes) {
    throw new InvalidRequestError(`${what} is ${bytes} bytes; at most ${ENVIRONMENT_LIMITS.maxBytes} are allowed`);
  }
  return Object.freeze({ ...out });
}

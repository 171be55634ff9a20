import { randomBytes } from 'node:crypto';

import { InvalidIdentifierError } from './errors.js';

/**
 * Azure's identifier rules (Learn, sessions-usage): 4–128 characters, letters, digits and
 * `| - & ^ % $ # ( ) { } [ ] ; < >`. Identifiers are secrets by convention: never log them.
 */
export const IDENTIFIER_PATTERN = /^[A-Za-z0-9|\-&^%$#(){}[\];<>]{4,128}$/;

export function isValidIdentifier(value: unknown): value is string {
  return typeof value === 'string' && IDENTIFIER_PATTERN.test(value);
}

/** Throws InvalidIdentifierError with the reason; returns the identifier unchanged otherwise. */
export function assertIdentifier(value: unknown): string {
  // Fast path for the common, valid case: one regex test. The scan below only words the error.
  if (typeof value === 'string' && IDENTIFIER_PATTERN.test(value)) return value;
  if (typeof value !== 'string') {
    throw new InvalidIdentifierError(`identifier must be a string, got ${value === null ? 'null' : typeof value}`);
  }
  if (value.length < 4 || value.length > 128) {
    throw new InvalidIdentifierError(`identifier must be 4–128 characters long, got ${value.length}`);
  }
  const bad = [...value].find((ch) => !/^[A-Za-z0-9|\-&^%$#(){}[\];<>]$/.test(ch));
  if (bad !== undefined) {
    const shown = /^[\x21-\x7e]$/.test(bad) ? `"${bad}"` : `U+${bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new InvalidIdentifierError(
      `identifier contains ${shown}; allowed are letters, digits and | - & ^ % $ # ( ) { } [ ] ; < >`,
    );
  }
  return value;
}

/** A new identifier from a cryptographic random source: 32 hex characters (128 bits). */
export function generateIdentifier(): string {
  return randomBytes(16).toString('hex');
}

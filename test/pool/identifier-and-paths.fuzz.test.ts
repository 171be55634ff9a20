/**
 * Property tests for the parsers of untrusted input the pool owns: identifiers and /mnt/data
 * paths. Seeds are fixed so a failure reproduces; fast-check prints the seed and the shrunk case.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

import { assertIdentifier, FileError, InvalidIdentifierError, isValidIdentifier, normaliseDataPath } from '../../src/index.js';

const SEED = 20261122;
const ALLOWED = /^[A-Za-z0-9|\-&^%$#(){}[\];<>]$/;
const allowedChar = fc.constantFrom(...'abcXYZ0189|-&^%$#(){}[];<>'.split(''));

describe('identifiers', () => {
  it('accepts exactly the strings of 4–128 allowed characters', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 140 }), (value) => {
        const expected = value.length >= 4 && value.length <= 128 && [...value].every((c) => ALLOWED.test(c));
        expect(isValidIdentifier(value)).toBe(expected);
        if (expected) expect(assertIdentifier(value)).toBe(value);
        else expect(() => assertIdentifier(value)).toThrow(InvalidIdentifierError);
      }),
      { seed: SEED, numRuns: 2000 },
    );
  });

  it('accepts every well-formed identifier', () => {
    fc.assert(
      fc.property(fc.array(allowedChar, { minLength: 4, maxLength: 128 }), (chars) => {
        expect(isValidIdentifier(chars.join(''))).toBe(true);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });

  it('rejects non-strings with a typed error', () => {
    for (const value of [undefined, null, 1234, {}, ['abcd'], Symbol('x')]) {
      expect(() => assertIdentifier(value)).toThrow(InvalidIdentifierError);
    }
  });
});

describe('/mnt/data paths', () => {
  it('never yields a path that leaves the data directory', () => {
    const segment = fc.oneof(
      fc.constantFrom('..', '.', '', '/', '//', '\\', '\u0000', '/mnt/data', 'a', 'b.txt'),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 8 }), fc.boolean(), (parts, allowRoot) => {
        const input = parts.join('/');
        let out: string;
        try {
          out = normaliseDataPath(input, { allowRoot });
        } catch (error) {
          expect(error).toBeInstanceOf(FileError);
          return;
        }
        expect(out.startsWith('/')).toBe(false);
        expect(out.split('/')).not.toContain('..');
        expect(out.split('/')).not.toContain('.');
        expect(out).not.toMatch(/[\u0000-\u001f\\]/);
        if (!allowRoot) expect(out).not.toBe('');
      }),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('maps the forms clients send to one relative path', () => {
    expect(normaliseDataPath('a.txt')).toBe('a.txt');
    expect(normaliseDataPath('/mnt/data/a.txt')).toBe('a.txt');
    expect(normaliseDataPath('dir//a.txt')).toBe('dir/a.txt');
    expect(normaliseDataPath('/mnt/data', { allowRoot: true })).toBe('');
    for (const bad of ['/etc/passwd', '../x', 'a/../../x', '/mnt/database/x', 'a\\b', '']) {
      expect(() => normaliseDataPath(bad)).toThrow(FileError);
    }
  });
});

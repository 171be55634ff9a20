/**
 * File names under /mnt/data: any script's letters are fine, but no control character beyond ASCII
 * (C1: a terminal's escape sequences), no invisible formatting character (bidi overrides showing
 * `exe.txt` as `txt.exe`, zero-width characters, BOM), no line separator and no lone surrogate
 * (not encodable in UTF-8, so the file would be stored under another name).
 */

import { describe, expect, it } from 'vitest';

import { ErrorCode, SandpoolError } from '../../src/errors.js';
import { normaliseDataPath } from '../../src/pool/file-paths.js';

describe('file names', () => {
  it.each(['données.csv', '报告 2026.xlsx', 'ü ß-ø_(1).txt', '📈 chart.png', 'a@b $c&d=e;f,g#h%i^j.txt', 'dir/Ελληνικά.md'])(
    'accepts %s',
    (name) => {
      expect(normaliseDataPath(name)).toBe(name);
    },
  );

  it.each([
    ['NUL', 'a\u0000b'],
    ['ESC', 'a\u001b[31mred'],
    ['DEL', 'a\u007fb'],
    ['C1 NEL', 'a\u0085b'],
    ['C1 CSI', 'a\u009b31mb'],
    ['RIGHT-TO-LEFT OVERRIDE', 'invoice\u202Etxt.exe'],
    ['RIGHT-TO-LEFT ISOLATE', 'a\u2067b'],
    ['LEFT-TO-RIGHT MARK', 'a\u200eb'],
    ['ZERO WIDTH SPACE', 'pass\u200bwd.txt'],
    ['BOM', '\ufeffdata.csv'],
    ['LINE SEPARATOR', 'a\u2028b'],
    ['PARAGRAPH SEPARATOR', 'a\u2029b'],
    ['lone high surrogate', 'a\ud800b'],
    ['lone low surrogate', 'a\udc00b'],
  ])('refuses %s', (_label, name) => {
    let failure: unknown;
    try {
      normaliseDataPath(name);
    } catch (error) {
      failure = error;
    }
    expect(SandpoolError.is(failure) && failure.code).toBe(ErrorCode.INVALID_PATH);
    expect((failure as Error).message).toMatch(/control or invisible formatting character \(U\+[0-9A-F]{4}\)|backslash/);
  });
});

import { ErrorCode, FileError } from '../errors.js';

const DATA_DIR = '/mnt/data';
const MAX_PATH_LENGTH = 1024;
const MAX_SEGMENT_LENGTH = 255;

/**
 * Normalise a caller-supplied path to one relative to `/mnt/data`, or throw `INVALID_PATH`.
 * Clients send bare names (`a.txt`), sub-paths (`dir/a.txt`) and absolute data paths
 * (`/mnt/data/a.txt`); anything else absolute, any `.`/`..` segment, control or invisible
 * formatting character (any script's letters are fine) is refused here, before a backend sees it. Backends still refuse symlinks that escape at run time.
 *
 * @param allowRoot when true, `""`, `/mnt/data` and `.` mean the data directory itself (listings).
 */
export function normaliseDataPath(input: unknown, { allowRoot = false }: { allowRoot?: boolean } = {}): string {
  if (typeof input !== 'string') {
    throw new FileError(ErrorCode.INVALID_PATH, `path must be a string, got ${typeof input}`);
  }
  let path = input;
  if (path === DATA_DIR || path === `${DATA_DIR}/`) path = '';
  else if (path.startsWith(`${DATA_DIR}/`)) path = path.slice(DATA_DIR.length + 1);
  else if (path.startsWith('/')) {
    throw new FileError(ErrorCode.INVALID_PATH, `path must be relative to ${DATA_DIR} or start with ${DATA_DIR}/`);
  }
  if (path.length > MAX_PATH_LENGTH) {
    throw new FileError(ErrorCode.INVALID_PATH, `path is longer than ${MAX_PATH_LENGTH} characters`);
  }
  if (/\\/.test(path)) throw new FileError(ErrorCode.INVALID_PATH, 'path contains a backslash');
  // Any Unicode control (C0, DEL and C1: a terminal's escape sequences), format character (bidi
  // overrides that show `exe.txt` as `txt.exe`, zero-width characters, BOM), line or paragraph
  // separator, or lone surrogate (not encodable in UTF-8: the file would get another name).
  const bad = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u.exec(path);
  if (bad !== null) {
    const code = `U+${bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    throw new FileError(ErrorCode.INVALID_PATH, `path contains a control or invisible formatting character (${code})`);
  }
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.length === 1 && segments[0] === '.' && allowRoot) return '';
  for (const segment of segments) {
    if (segment === '.' || segment === '..') {
      throw new FileError(ErrorCode.INVALID_PATH, `path may not contain "${segment}" segments`);
    }
    if (segment.length > MAX_SEGMENT_LENGTH) {
      throw new FileError(ErrorCode.INVALID_PATH, `a path segment is longer than ${MAX_SEGMENT_LENGTH} characters`);
    }
  }
  const normalised = segments.join('/');
  if (normalised === '' && !allowRoot) throw new FileError(ErrorCode.INVALID_PATH, 'path names no file');
  return normalised;
}

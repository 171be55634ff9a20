/**
 * The files API against hostile session code: symlinks, a FIFO and a symlinked directory planted
 * in /mnt/data by the session, then every file operation through them; and path traversal in every
 * file operation. Each must end in a typed FileError (INVALID_PATH), never follow the link, never
 * hang, and never touch the link's target.
 */

import { expect, it } from 'vitest';

import { SessionPool, type Session } from '../../../src/index.js';
import { ErrorCode, expectFileError } from './harness.js';

export interface FileAttackContext {
  readonly pool: SessionPool;
  readonly afterAttack: () => Promise<void>;
}

const PLANT = [
  'import os',
  "open('/tmp/victim', 'w').write('victim')",
  "os.makedirs('/mnt/data/sub', exist_ok=True)",
  "open('/mnt/data/sub/real.txt', 'w').write('real')",
  "os.symlink('/etc/passwd', '/mnt/data/link')",
  "os.symlink('/etc', '/mnt/data/dirlink')",
  "os.symlink('/tmp/victim', '/mnt/data/victimlink')",
  "os.symlink('/tmp', '/mnt/data/tmplink')",
  "os.symlink('../../..', '/mnt/data/sub/up')",
  "os.symlink('/proc/self/root', '/mnt/data/procroot')",
  "os.mkfifo('/mnt/data/fifo')",
  "sorted(os.listdir('/mnt/data'))",
].join('\n');

const TRAVERSALS = [
  '../etc/passwd',
  '/etc/passwd',
  'a/../../etc/passwd',
  './../x',
  'sub/../../x',
  '/mnt/data/../../etc/passwd',
  'x\u0000y',
  'sub\\..\\..\\x',
  '..',
];

async function victimIntact(session: Session): Promise<void> {
  const check = await session.execute({ code: "open('/tmp/victim').read()" });
  expect(check.result).toBe('victim');
}

export function fileApiAttacks(context: () => FileAttackContext, timeoutMs: number): void {
  it(
    'files API: symlinks and a FIFO planted by session code are refused by every operation',
    async () => {
      const { pool, afterAttack } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      const plant = await session.execute({ code: PLANT });
      expect(plant.status, plant.stderr).toBe('Succeeded');

      const refused: [string, () => Promise<unknown>][] = [
        ['download link', () => session.downloadFile('link')],
        ['download through dirlink', () => session.downloadFile('dirlink/passwd')],
        ['download through sub/up', () => session.downloadFile('sub/up/etc/passwd')],
        ['download through procroot', () => session.downloadFile('procroot/etc/passwd')],
        ['download fifo', () => session.downloadFile('fifo')],
        ['stat link', () => session.fileInfo('link')],
        ['stat through dirlink', () => session.fileInfo('dirlink/passwd')],
        ['stat dirlink', () => session.fileInfo('dirlink')],
        ['list dirlink', () => session.listFiles({ path: 'dirlink' })],
        ['list sub/up', () => session.listFiles({ path: 'sub/up', recursive: true })],
        ['list procroot', () => session.listFiles({ path: 'procroot' })],
        ['upload over victimlink', () => session.uploadFile('victimlink', 'overwritten')],
        ['upload through tmplink', () => session.uploadFile('tmplink/victim', 'overwritten')],
        ['upload through dirlink', () => session.uploadFile('dirlink/evil', 'x')],
        ['delete victimlink', () => session.deleteFile('victimlink')],
        ['delete through tmplink', () => session.deleteFile('tmplink/victim')],
        ['delete through dirlink', () => session.deleteFile('dirlink/passwd')],
        ['delete dirlink', () => session.deleteFile('dirlink')],
      ];
      for (const [what, operation] of refused) {
        // INVALID_PATH for a link met on the way; FILE_NOT_FOUND is also acceptable only when the
        // operation never resolved the link (it is not) — so we insist on INVALID_PATH.
        await expectFileError(operation, ErrorCode.INVALID_PATH, what);
      }
      await victimIntact(session);

      // A recursive listing shows real files and directories only: never a link or what it points to.
      const listed = (await session.listFiles({ recursive: true })).map((f) => f.path).sort();
      expect(listed).toEqual(['sub', 'sub/real.txt']);
      // The real file beside the links still works both ways.
      const { body } = await session.downloadFile('sub/real.txt');
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.from(chunk));
      expect(Buffer.concat(chunks).toString()).toBe('real');
      // Deleting the directory that holds a link removes the link, not its target.
      await session.deleteFile('sub');
      const after = await session.execute({
        code: "import os\n[os.path.exists('/etc/passwd'), sorted(os.listdir('/mnt/data'))]",
      });
      expect(String(after.result)).toMatch(/^\[True, /);
      expect(String(after.result)).not.toMatch(/'sub'/);
      await victimIntact(session);
      await session.stop();
      await afterAttack();
    },
    timeoutMs,
  );

  it(
    'files API: path traversal is a typed FileError in upload, list, stat, download and delete',
    async () => {
      const { pool, afterAttack } = context();
      const session = await pool.acquire(SessionPool.generateIdentifier());
      for (const bad of TRAVERSALS) {
        const shown = JSON.stringify(bad);
        await expectFileError(() => session.uploadFile(bad, 'x'), ErrorCode.INVALID_PATH, `upload ${shown}`);
        await expectFileError(() => session.listFiles({ path: bad }), ErrorCode.INVALID_PATH, `list ${shown}`);
        await expectFileError(() => session.fileInfo(bad), ErrorCode.INVALID_PATH, `stat ${shown}`);
        await expectFileError(() => session.downloadFile(bad), ErrorCode.INVALID_PATH, `download ${shown}`);
        await expectFileError(() => session.deleteFile(bad), ErrorCode.INVALID_PATH, `delete ${shown}`);
      }
      // Nothing was written anywhere by the refused uploads.
      const look = await session.execute({
        code: "import os\n[os.listdir('/mnt/data'), os.path.exists('/x'), os.path.exists('/mnt/x')]",
      });
      expect(look.result).toBe('[[], False, False]');
      expect(await session.listFiles()).toEqual([]);
      await session.stop();
      await afterAttack();
    },
    timeoutMs,
  );

  it(
    "a destroyed session's files and state are unreachable to the next session with the same identifier",
    async () => {
      const { pool, afterAttack } = context();
      const identifier = SessionPool.generateIdentifier();
      const first = await pool.acquire(identifier);
      await first.uploadFile('private.txt', 'first tenant');
      const planted = await first.execute({
        code: "left_behind = 'first tenant'\nopen('/tmp/left-behind', 'w').write('x')\nopen('/mnt/data/private.txt').read()",
      });
      expect(planted.result).toBe('first tenant');
      await first.stop();
      await expect(first.listFiles()).rejects.toMatchObject({ code: 'SANDPOOL_SESSION_NOT_FOUND' });
      const next = await pool.acquire(identifier);
      expect(next.id).not.toBe(first.id);
      expect(await next.listFiles()).toEqual([]);
      const look = await next.execute({
        code: "import os\n['left_behind' in globals(), os.path.exists('/tmp/left-behind'), os.listdir('/mnt/data')]",
      });
      expect(look.result).toBe('[False, False, []]');
      await next.stop();
      await afterAttack();
    },
    timeoutMs,
  );
}

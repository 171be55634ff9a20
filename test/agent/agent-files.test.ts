/** Files under the agent's data dir through the real client: round trips, 50 MB streamed both ways
 * without buffering, the size cap, path confinement and symlinks planted by session code. */

import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { run, startAgent, type AgentHarness } from './agent-harness.js';

async function* bytes(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

/** `total` bytes of deterministic pseudo-random data in 1 MiB chunks, hashed as they are produced. */
function generated(total: number, hash: ReturnType<typeof createHash>): AsyncGenerator<Uint8Array> {
  return (async function* () {
    let produced = 0;
    let seed = 0x12345678;
    while (produced < total) {
      const size = Math.min(1 << 20, total - produced);
      const chunk = Buffer.allocUnsafe(size);
      for (let i = 0; i < size; i += 4) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        chunk.writeUInt32LE(seed, i);
      }
      hash.update(chunk);
      produced += size;
      yield chunk;
    }
  })();
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of body) parts.push(Buffer.from(chunk));
  return Buffer.concat(parts);
}

/** Peak resident memory of a process, from /proc (kB). */
function peakRssKb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0);
}

describe('agent files', () => {
  let agent: AgentHarness;

  beforeAll(async () => {
    agent = await startAgent({ transport: 'unix' });
  });
  afterAll(async () => {
    await agent?.close();
  });

  it('uploads, stats, lists, downloads and deletes a file', async () => {
    const info = await agent.client.upload('hello.txt', bytes(Buffer.from('hello world\n')), { maxBytes: 1024 });
    expect(info).toMatchObject({ name: 'hello.txt', path: 'hello.txt', type: 'file', sizeInBytes: 12 });
    expect(Date.parse(info.lastModifiedAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(await agent.client.stat('hello.txt')).toEqual(info);
    expect((await agent.client.list({ path: '', recursive: false })).map((f) => f.path)).toContain('hello.txt');
    const { info: got, body } = await agent.client.download('hello.txt');
    expect(got.sizeInBytes).toBe(12);
    expect((await collect(body)).toString()).toBe('hello world\n');
    await agent.client.delete('hello.txt');
    await expect(agent.client.stat('hello.txt')).rejects.toMatchObject({ code: 'SANDPOOL_FILE_NOT_FOUND' });
  });

  it('creates parent directories and lists recursively', async () => {
    await agent.client.upload('dir/sub/a.csv', bytes(Buffer.from('a,b\n')), { maxBytes: 100 });
    await agent.client.upload('dir/b.txt', bytes(Buffer.from('b')), { maxBytes: 100 });
    const flat = await agent.client.list({ path: 'dir', recursive: false });
    expect(flat.map((f) => `${f.path}:${f.type}`)).toEqual(['dir/b.txt:file', 'dir/sub:directory']);
    const deep = await agent.client.list({ path: 'dir', recursive: true });
    expect(deep.map((f) => f.path)).toEqual(['dir/b.txt', 'dir/sub', 'dir/sub/a.csv']);
    await agent.client.delete('dir');
    await expect(agent.client.list({ path: 'dir', recursive: false })).rejects.toMatchObject({ code: 'SANDPOOL_FILE_NOT_FOUND' });
  });

  it('shares files between code and the files API both ways', async () => {
    await agent.client.execute(run('open("from_code.txt", "w").write("written by code")'));
    const { body } = await agent.client.download('from_code.txt');
    expect((await collect(body)).toString()).toBe('written by code');
    await agent.client.upload('from_api.txt', bytes(Buffer.from('uploaded')), { maxBytes: 100 });
    expect((await agent.client.execute(run('open("from_api.txt").read()'))).result).toBe('uploaded');
  });

  it('streams 50 MB up and down without buffering it in the agent', async () => {
    const size = 50 * 1024 * 1024;
    const sent = createHash('sha256');
    const info = await agent.client.upload('big.bin', generated(size, sent), { maxBytes: size });
    expect(info.sizeInBytes).toBe(size);
    const { body } = await agent.client.download('big.bin');
    const received = createHash('sha256');
    let total = 0;
    for await (const chunk of body) {
      received.update(chunk);
      total += chunk.byteLength;
    }
    expect(total).toBe(size);
    expect(received.digest('hex')).toBe(sent.digest('hex'));
    // The file (and its base64 form, 67 MB) never sat in the agent's memory at once.
    expect(peakRssKb(agent.child.pid as number)).toBeLessThan(48 * 1024);
    await agent.client.delete('big.bin');
  }, 120_000);

  it('stops a download early when the consumer breaks out, and keeps working', async () => {
    await agent.client.upload('medium.bin', generated(8 << 20, createHash('md5')), { maxBytes: 8 << 20 });
    const { body } = await agent.client.download('medium.bin');
    let chunks = 0;
    for await (const _ of body) {
      if (++chunks === 2) break;
    }
    expect(await agent.client.ping(2000)).toBeLessThan(2000);
    expect((await agent.client.stat('medium.bin')).sizeInBytes).toBe(8 << 20);
  });

  it('enforces the size cap while streaming and leaves nothing behind', async () => {
    await expect(
      agent.client.upload('too-big.bin', generated(3 << 20, createHash('md5')), { maxBytes: 1 << 20 }),
    ).rejects.toMatchObject({ code: 'SANDPOOL_FILE_TOO_LARGE' });
    await expect(agent.client.stat('too-big.bin')).rejects.toMatchObject({ code: 'SANDPOOL_FILE_NOT_FOUND' });
    expect(readdirSync(agent.dataDir).filter((n) => n.startsWith('.sandpool-upload-'))).toEqual([]);
  });

  it('replaces a file atomically on re-upload', async () => {
    await agent.client.upload('replace.txt', bytes(Buffer.from('old contents')), { maxBytes: 100 });
    await agent.client.upload('replace.txt', bytes(Buffer.from('new')), { maxBytes: 100 });
    expect(readFileSync(path.join(agent.dataDir, 'replace.txt'), 'utf8')).toBe('new');
  });

  it('refuses absolute paths, dot segments and empty segments', async () => {
    for (const bad of ['/etc/passwd', '../escape.txt', 'a/../../escape.txt', 'a/./b', 'a//b', 'x/', '.']) {
      await expect(agent.client.stat(bad), bad).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
      await expect(agent.client.upload(bad, bytes(Buffer.from('x')), { maxBytes: 10 }), bad).rejects.toMatchObject({
        code: 'SANDPOOL_INVALID_PATH',
      });
      await expect(agent.client.download(bad), bad).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
      await expect(agent.client.delete(bad), bad).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
    }
    expect(existsSync(path.join(path.dirname(agent.dataDir), 'escape.txt'))).toBe(false);
  });

  it('refuses symlinks planted by session code, wherever they are in the path', async () => {
    const outside = path.dirname(agent.dataDir);
    const plant = [
      'import os',
      `os.symlink(${JSON.stringify(outside)}, "outside_dir")`,
      'os.symlink("/etc/passwd", "passwd_link")',
      'os.makedirs("real", exist_ok=True)',
      'os.mkfifo("a_fifo")',
    ].join('\n');
    expect((await agent.client.execute(run(plant))).status).toBe('Succeeded');
    await expect(agent.client.download('passwd_link')).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
    await expect(agent.client.stat('passwd_link')).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
    await expect(agent.client.stat('outside_dir/data')).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
    await expect(agent.client.list({ path: 'outside_dir', recursive: true })).rejects.toMatchObject({
      code: 'SANDPOOL_INVALID_PATH',
    });
    await expect(agent.client.upload('outside_dir/planted.txt', bytes(Buffer.from('x')), { maxBytes: 10 })).rejects.toMatchObject(
      { code: 'SANDPOOL_INVALID_PATH' },
    );
    expect(existsSync(path.join(outside, 'planted.txt'))).toBe(false);
    await expect(agent.client.upload('passwd_link', bytes(Buffer.from('x')), { maxBytes: 10 })).rejects.toMatchObject({
      code: 'SANDPOOL_INVALID_PATH',
    });
    await expect(agent.client.delete('outside_dir')).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
    expect(existsSync(agent.dataDir)).toBe(true);
    // A FIFO must be refused, not hang the agent on open().
    await expect(agent.client.download('a_fifo')).rejects.toMatchObject({ code: 'SANDPOOL_INVALID_PATH' });
    const listed = (await agent.client.list({ path: '', recursive: true })).map((f) => f.path);
    expect(listed).toContain('real');
    expect(listed).not.toContain('outside_dir');
    expect(listed).not.toContain('passwd_link');
    expect(listed).not.toContain('a_fifo');
  });

  it('reports missing files with FILE_NOT_FOUND', async () => {
    await expect(agent.client.download('nope.txt')).rejects.toMatchObject({ code: 'SANDPOOL_FILE_NOT_FOUND' });
    await expect(agent.client.delete('nope.txt')).rejects.toMatchObject({ code: 'SANDPOOL_FILE_NOT_FOUND' });
    await expect(agent.client.stat('no/such/dir.txt')).rejects.toMatchObject({ code: 'SANDPOOL_FILE_NOT_FOUND' });
  });
});

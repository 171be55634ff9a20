/**
 * Each ContainerBackend owns exactly what it created. Closing one — a pool deleted or replaced, or
 * a backend built for a PUT that was then rejected and closed at once — must leave every other
 * backend of the same process working: its sessions, their agent and forwarder sockets, and new
 * sessions.
 */

import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import type { BackendSession } from '../../src/backend.js';
import { buildEchoImage, containersOf, echoTemplate, newOwnerId, noExit, podmanAvailable, spec } from './helpers.js';

const available = podmanAvailable();

describe.skipIf(!available)('one backend closing leaves the others alone', () => {
  const owner = newOwnerId();
  let survivor: ContainerBackend;
  let python: BackendSession;
  let custom: BackendSession;
  /** The survivor's sockets (agent, forwarder) under this process's run directory. */
  let sockets: string[] = [];

  const socketsUnder = (dir: string): string[] =>
    readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.name.endsWith('.sock'))
      .map((e) => join(e.parentPath, e.name));
  const processDir = () => {
    const sessions = join(survivor.options.runDir, 'sessions');
    const mine = readdirSync(sessions).find((name) => name.startsWith(`${process.pid}.`));
    return join(sessions, mine ?? 'missing');
  };

  beforeAll(async () => {
    buildEchoImage();
    survivor = new ContainerBackend();
    python = await survivor.create(spec(owner), { onExit: noExit });
    custom = await survivor.create(spec(owner, { containerType: 'CustomContainer', customContainer: echoTemplate() }), {
      onExit: noExit,
    });
    // Start the custom session's forwarder (its socket lives in the session's host directory).
    expect((await survivor.fetch(custom, new Request('http://session/hello'))).status).toBe(200);
    sockets = socketsUnder(processDir());
    expect(sockets.length).toBe(2);
  }, 180_000);

  afterAll(async () => {
    await survivor?.close();
    expect(containersOf(owner)).toEqual([]);
  }, 60_000);

  const stillWorks = async () => {
    // Checked by path: a pooled keep-alive connection would hide a deleted forwarder socket.
    for (const socket of sockets) expect(existsSync(socket), socket).toBe(true);
    const run = await survivor.execute(python, { language: 'python', code: '6 * 7', timeoutMs: 30_000, outputMaxBytes: 4096 });
    expect(run.result).toBe(42);
    const response = await survivor.fetch(custom, new Request('http://session/hello'));
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const fresh = await survivor.create(spec(owner), { onExit: noExit });
    const again = await survivor.execute(fresh, { language: 'python', code: '1 + 1', timeoutMs: 30_000, outputMaxBytes: 4096 });
    expect(again.result).toBe(2);
    await survivor.destroy(fresh, { reason: 'stopped' });
  };

  it('a backend that never created anything is closed (a rejected PUT)', async () => {
    const unused = new ContainerBackend();
    await unused.close();
    await stillWorks();
  }, 120_000);

  it('a backend with its own session is closed (a deleted or replaced pool)', async () => {
    const other = new ContainerBackend();
    const otherOwner = newOwnerId();
    await other.create(spec(otherOwner), { onExit: noExit });
    await other.close();
    expect(containersOf(otherOwner)).toEqual([]);
    await stillWorks();
  }, 180_000);

  it('a backend is closed while another creates a session', async () => {
    const other = new ContainerBackend();
    const creating = survivor.create(spec(owner), { onExit: noExit });
    await other.close();
    const session = await creating;
    const run = await survivor.execute(session, { language: 'python', code: '3 * 3', timeoutMs: 30_000, outputMaxBytes: 4096 });
    expect(run.result).toBe(9);
    await survivor.destroy(session, { reason: 'stopped' });
  }, 180_000);

  it('close() removes its own host directories and nothing else', async () => {
    const other = new ContainerBackend();
    const s = await other.create(spec(newOwnerId()), { onExit: noExit });
    await other.destroy(s, { reason: 'stopped' });
    await other.close();
    // Only the closed backend's own directory went; the survivor's sockets are all still there.
    expect(socketsUnder(processDir()).sort()).toEqual([...sockets].sort());
  }, 120_000);
});

/**
 * The port forwarder (backends/container/port-forwarder.ts) in this process's own network
 * namespace: it is ready only once socat listens (socat binds, chmods, then listens: a connect in
 * between is refused, which failed the first request to a fresh custom container), and a connection
 * made the moment it is ready reaches the target port.
 */

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { forwarderAvailable, isUnixListening, startForwarder } from '../../backends/container/port-forwarder.js';

const root = process.getuid?.() === 0;

describe.skipIf(!root || forwarderAvailable() !== undefined)('container port forwarder', () => {
  let dir: string;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sandpool-forwarder-'));
    server = createServer((socket) => socket.end('hello from the port'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('tells a bound unix socket from a listening one', async () => {
    const path = join(dir, 'bound.sock');
    // Python binds, reports, waits for a line, listens, reports, waits again.
    const child = spawn(
      'python3',
      [
        '-c',
        'import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\nprint("bound", flush=True)\nsys.stdin.readline()\ns.listen()\nprint("listening", flush=True)\nsys.stdin.readline()',
        path,
      ],
      { stdio: ['pipe', 'pipe', 'inherit'] },
    );
    const lines: string[] = [];
    const next = () =>
      new Promise<string>((resolve) => {
        const check = () => (lines.length > 0 ? resolve(lines.shift() as string) : setTimeout(check, 5));
        check();
      });
    // Whole lines only: a chunk may end mid-line or hold nothing but a newline.
    let partial = '';
    child.stdout.on('data', (chunk: Buffer) => {
      const parts = (partial + chunk.toString()).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts.filter((line) => line.length > 0));
    });
    try {
      expect(await next()).toBe('bound');
      expect(isUnixListening(child.pid as number, path)).toBe(false);
      child.stdin.write('\n');
      expect(await next()).toBe('listening');
      expect(isUnixListening(child.pid as number, path)).toBe(true);
      expect(isUnixListening(child.pid as number, `${path}.other`)).toBe(false);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('reaches the port with a connection made as soon as it is ready', async () => {
    for (let i = 0; i < 10; i++) {
      const forwarder = await startForwarder(process.pid, port, join(dir, `port-${i}.sock`));
      try {
        const answer = await new Promise<string>((resolve, reject) => {
          const socket = connect(forwarder.socketPath);
          let data = '';
          socket.on('data', (chunk: Buffer) => {
            data += chunk.toString();
          });
          socket.on('end', () => resolve(data));
          socket.on('error', reject);
        });
        expect(answer).toBe('hello from the port');
      } finally {
        await forwarder.stop();
      }
    }
  });
});

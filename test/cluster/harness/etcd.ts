/**
 * A real etcd cluster for tests (Debian's etcd 3.4 binary): members on loopback with free ports,
 * or each in its own TestNetwork host. Data dirs are temporary and removed by `destroy()`; members
 * can be killed and started again on their data dir (quorum tests).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';

import type { TestNetwork } from './netns.js';

export const ETCD_BINARY = '/usr/bin/etcd';

export function etcdAvailable(): boolean {
  return existsSync(ETCD_BINARY);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

interface Member {
  readonly name: string;
  /** TestNetwork host, or undefined on loopback. */
  readonly host: string | undefined;
  readonly ip: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  process: ChildProcess | undefined;
  log: string;
}

export class EtcdCluster {
  readonly #members: Member[];
  readonly #net: TestNetwork | undefined;
  readonly #root: string;
  readonly #token: string;

  private constructor(members: Member[], net: TestNetwork | undefined, root: string) {
    this.#members = members;
    this.#net = net;
    this.#root = root;
    this.#token = path.basename(root);
  }

  /** Start members named after `hosts` (TestNetwork host names), or `count` members on loopback. */
  static async start(options: { net: TestNetwork; hosts: readonly string[] } | { count: number }): Promise<EtcdCluster> {
    const root = await mkdtemp(path.join(os.tmpdir(), `sandpool-etcd-${process.pid}-`));
    const members: Member[] = [];
    if ('net' in options) {
      for (const host of options.hosts) {
        members.push({
          name: host,
          host,
          ip: options.net.host(host).ip,
          clientPort: 2379,
          peerPort: 2380,
          dataDir: path.join(root, host),
          process: undefined,
          log: '',
        });
      }
    } else {
      for (let i = 0; i < options.count; i += 1) {
        members.push({
          name: `e${i}`,
          host: undefined,
          ip: '127.0.0.1',
          clientPort: await freePort(),
          peerPort: await freePort(),
          dataDir: path.join(root, `e${i}`),
          process: undefined,
          log: '',
        });
      }
    }
    const cluster = new EtcdCluster(members, 'net' in options ? options.net : undefined, root);
    try {
      for (const m of members) cluster.#spawn(m, 'new');
      await cluster.waitHealthy();
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  get clientUrls(): string[] {
    return this.#members.map((m) => `http://${m.ip}:${m.clientPort}`);
  }

  get names(): string[] {
    return this.#members.map((m) => m.name);
  }

  /** SIGKILL one member. */
  async kill(name: string): Promise<void> {
    const m = this.#member(name);
    const child = m.process;
    m.process = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  /** Start a killed member again on its data dir. */
  async restart(name: string): Promise<void> {
    const m = this.#member(name);
    if (m.process !== undefined) return;
    this.#spawn(m, 'existing');
  }

  /** Resolves once every running member answers its health endpoint (quorum present). */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const running = this.#members.filter((m) => m.process !== undefined);
      const answers = await Promise.all(
        running.map(async (m) => {
          try {
            const response = await fetch(`http://${m.ip}:${m.clientPort}/health`, { signal: AbortSignal.timeout(1000) });
            return ((await response.json()) as { health?: string }).health === 'true';
          } catch {
            return false;
          }
        }),
      );
      if (answers.length > 0 && answers.every(Boolean)) return;
      if (Date.now() > deadline) {
        throw new Error(
          `etcd did not become healthy:\n${this.#members.map((m) => `${m.name}: ${m.log.slice(-800)}`).join('\n')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async destroy(): Promise<void> {
    await Promise.all(this.#members.map((m) => this.kill(m.name)));
    await rm(this.#root, { recursive: true, force: true });
  }

  #member(name: string): Member {
    const m = this.#members.find((x) => x.name === name);
    if (m === undefined) throw new Error(`no etcd member ${name}`);
    return m;
  }

  #spawn(m: Member, state: 'new' | 'existing'): void {
    const initial = this.#members.map((x) => `${x.name}=http://${x.ip}:${x.peerPort}`).join(',');
    const args = [
      '--name',
      m.name,
      '--data-dir',
      m.dataDir,
      '--listen-client-urls',
      `http://${m.ip}:${m.clientPort}`,
      '--advertise-client-urls',
      `http://${m.ip}:${m.clientPort}`,
      '--listen-peer-urls',
      `http://${m.ip}:${m.peerPort}`,
      '--initial-advertise-peer-urls',
      `http://${m.ip}:${m.peerPort}`,
      '--initial-cluster',
      initial,
      '--initial-cluster-token',
      this.#token,
      '--initial-cluster-state',
      state,
      '--log-level',
      'warn',
    ];
    const child =
      this.#net !== undefined && m.host !== undefined
        ? this.#net.spawn(m.host, ETCD_BINARY, args, { ETCD_UNSUPPORTED_ARCH: '' })
        : spawn(ETCD_BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    m.log = '';
    const append = (chunk: Buffer): void => {
      m.log = (m.log + chunk.toString('utf8')).slice(-20_000);
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    m.process = child;
    child.once('exit', () => {
      if (m.process === child) m.process = undefined;
    });
  }
}

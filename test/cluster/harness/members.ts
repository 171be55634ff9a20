/**
 * Real `sandpool serve --etcd …` processes, each in its own TestNetwork host, and a small HTTP
 * client for the test (it reaches every member through the test network's bridge). A member can
 * be killed with SIGKILL, stopped with SIGTERM (drain) and started again on the same data dir.
 */

import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import type { TestNetwork } from './netns.js';

export const ADMIN_KEY = 'cluster-test-admin-key-0123456789';
export const CLUSTER_SECRET = 'cluster-test-secret-0123456789abcdef0123';
const CLI = path.join(import.meta.dirname, '..', '..', '..', 'dist', 'cli', 'main.js');
const PORT = 8080;

export interface MemberOptions {
  readonly etcd: readonly string[];
  readonly leaseTtlSeconds: number;
  readonly prefix: string;
  readonly env?: NodeJS.ProcessEnv | undefined;
}

export class SandpoolMember {
  readonly name: string;
  readonly url: string;
  readonly #net: TestNetwork;
  readonly #options: MemberOptions;
  #dataDir: string | undefined;
  #process: ChildProcess | undefined;
  /** Every log line of every run, with the time the test saw it. */
  readonly lines: { at: number; line: string }[] = [];

  constructor(net: TestNetwork, host: string, options: MemberOptions) {
    this.name = host;
    this.#net = net;
    this.#options = options;
    this.url = `http://${net.host(host).ip}:${PORT}`;
  }

  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** Start (or start again) and resolve once it holds its lease and answers HTTP. */
  async start(timeoutMs = 60_000): Promise<void> {
    this.#dataDir ??= await mkdtemp(path.join(os.tmpdir(), `sandpool-member-${process.pid}-`));
    const host = this.#net.host(this.name);
    const args = [
      CLI,
      'serve',
      '--listen',
      `0.0.0.0:${PORT}`,
      '--pools',
      'none',
      '--data-dir',
      this.#dataDir,
      '--etcd',
      this.#options.etcd.join(','),
      '--etcd-prefix',
      this.#options.prefix,
      '--advertise',
      `http://${host.ip}:${PORT}`,
      '--node-id',
      this.name,
      '--lease-ttl',
      String(this.#options.leaseTtlSeconds),
    ];
    const child = this.#net.spawn(this.name, process.execPath, args, {
      SANDPOOL_ADMIN_KEY: ADMIN_KEY,
      SANDPOOL_CLUSTER_SECRET: CLUSTER_SECRET,
      ...this.#options.env,
    });
    this.#process = child;
    let buffer = '';
    const take = (chunk: Buffer): void => {
      buffer += chunk.toString('utf8');
      const parts = buffer.split('\n');
      buffer = parts.pop() ?? '';
      for (const line of parts) this.lines.push({ at: Date.now(), line });
      if (this.lines.length > 20_000) this.lines.splice(0, 10_000);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    const deadline = Date.now() + timeoutMs;
    const from = this.lines.length;
    while (!this.lines.slice(from).some((l) => l.line.includes('sandpool serving on'))) {
      if (child.exitCode !== null) throw new Error(`member ${this.name} exited:\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`member ${this.name} did not start:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.waitForLog('cluster lease held', from, deadline - Date.now());
    // Ready: the stored pool definitions are applied and filled, and the lease is held.
    for (;;) {
      const ready = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      if (ready?.status === 200) return;
      if (Date.now() > deadline) throw new Error(`member ${this.name} never became ready:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Resolves when a log line containing `text` appears after line index `from`. */
  async waitForLog(text: string, from = 0, timeoutMs = 30_000): Promise<{ at: number; line: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.slice(from).find((l) => l.line.includes(text));
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`member ${this.name}: no "${text}" in the log:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  tail(lines = 30): string {
    return this.lines
      .slice(-lines)
      .map((l) => l.line)
      .join('\n');
  }

  /** SIGKILL (no drain, no lease revoke). */
  async kill9(): Promise<void> {
    await this.#signal('SIGKILL');
  }

  /** SIGTERM: drain, close pools, revoke the lease. */
  async stop(): Promise<void> {
    await this.#signal('SIGTERM');
  }

  async destroy(): Promise<void> {
    await this.#signal('SIGKILL');
    if (this.#dataDir !== undefined) await rm(this.#dataDir, { recursive: true, force: true });
  }

  async #signal(signal: NodeJS.Signals): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    // `ip netns exec` execs the command, so the child's pid is the member itself.
    child.kill(signal);
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  }
}

export interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: unknown;
  readonly text: string;
}

/** One request to a member (admin key, JSON in and out when given). */
export async function call(
  base: string,
  method: string,
  pathAndQuery: string,
  body?: unknown,
  options: { timeoutMs?: number | undefined; headers?: Record<string, string> | undefined } = {},
): Promise<Answer> {
  const response = await fetch(`${base}${pathAndQuery}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_KEY}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...options.headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    parsed = text;
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/** Gen 1 execute of `code` for `identifier` on pool `pool`. */
export function execute(base: string, pool: string, identifier: string, code: string, timeoutMs?: number): Promise<Answer> {
  return call(
    base,
    'POST',
    `/pools/${pool}/code/execute?identifier=${encodeURIComponent(identifier)}`,
    { properties: { codeInputType: 'inline', executionType: 'synchronous', code } },
    { timeoutMs },
  );
}

export function resultOf(answer: Answer): unknown {
  return (answer.body as { properties?: { result?: unknown } })?.properties?.result;
}

/**
 * A throw-away network of "hosts" on this machine: one network namespace per host, each joined by a
 * veth pair to a bridge in a hub namespace, plus a veth from the test process's own namespace to the
 * same bridge so the test reaches every host. Names are unique per run (the creating pid is in every
 * namespace name, veths carry a random tag), nothing touches the host's own bridges or iptables, and
 * `destroy()` removes it all. A run that died without cleaning up is reaped by the next one: its
 * namespaces name a pid that no longer exists.
 */

import { execFile as execFileCb, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const execFile = promisify(execFileCb);

export interface TestHost {
  readonly name: string;
  readonly netns: string;
  readonly ip: string;
}

const PREFIX = 'spc-';

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function ipSync(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Kill what runs in a namespace and delete it (synchronous: also usable from an exit handler). */
function removeNamespace(netns: string): void {
  try {
    for (const pid of ipSync(['netns', 'pids', netns]).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // already gone
      }
    }
  } catch {
    // namespace already gone
  }
  try {
    ipSync(['netns', 'del', netns]);
  } catch {
    // already gone
  }
}

/** Remove namespaces left behind by test runs whose process is gone. */
export function reapStaleNetworks(): void {
  let list = '';
  try {
    list = ipSync(['netns', 'list']);
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const match = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (match !== null && !pidAlive(Number(match[1]))) removeNamespace(name);
  }
}

/** Whether this machine can build the network (root, iproute2, namespaces). */
export function canBuildNetworks(): boolean {
  return process.getuid?.() === 0 && existsSync('/usr/sbin/ip') && existsSync('/run') && process.platform === 'linux';
}

function freeSubnet(): string {
  const routes = ipSync(['-4', 'route', 'show', 'table', 'all']);
  for (let i = 0; i < 50; i += 1) {
    const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 256)}`;
    if (!routes.includes(`${subnet}.`)) return subnet;
  }
  throw new Error('no free 10.x.y.0/24 subnet for the test network');
}

export class TestNetwork {
  readonly tag: string;
  readonly subnet: string;
  readonly hub: string;
  readonly hosts = new Map<string, TestHost>();
  /** The test process's own address on the bridge. */
  readonly testIp: string;
  readonly #children = new Set<ChildProcess>();
  readonly #namespaces: string[] = [];
  readonly #onExit = (): void => this.destroySync();
  #destroyed = false;

  private constructor() {
    this.tag = randomBytes(3).toString('hex');
    this.subnet = freeSubnet();
    this.hub = `${PREFIX}${process.pid}-${this.tag}-hub`;
    this.testIp = `${this.subnet}.254`;
    process.once('exit', this.#onExit);
  }

  /** Build the hub and one namespace per host name (at most 200). */
  static async create(hostNames: readonly string[]): Promise<TestNetwork> {
    reapStaleNetworks();
    const net = new TestNetwork();
    try {
      await net.#build(hostNames);
    } catch (error) {
      net.destroySync();
      throw error;
    }
    return net;
  }

  host(name: string): TestHost {
    const host = this.hosts.get(name);
    if (host === undefined) throw new Error(`no test host ${name}`);
    return host;
  }

  /** Run a command inside a host's namespace and return its output. */
  async exec(host: string, command: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
    const { stdout } = await execFile('ip', ['netns', 'exec', this.host(host).netns, command, ...args], {
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  }

  /** Start a long-running process inside a host's namespace; it is killed by destroy(). */
  spawn(host: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(host).netns, command, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
    return child;
  }

  /** Cut a host off the network (its link to the bridge goes down). */
  async cut(host: string): Promise<void> {
    await execFile('ip', ['-n', this.host(host).netns, 'link', 'set', 'eth0', 'down']);
  }

  async heal(host: string): Promise<void> {
    await execFile('ip', ['-n', this.host(host).netns, 'link', 'set', 'eth0', 'up']);
  }

  /** Kill every process started here, delete every namespace (and so every veth). Idempotent. */
  destroySync(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    process.off('exit', this.#onExit);
    for (const child of this.#children) child.kill('SIGKILL');
    for (const netns of this.#namespaces) removeNamespace(netns);
    try {
      ipSync(['link', 'del', `sp${this.tag}r`]);
    } catch {
      // removed with its peer in the hub
    }
  }

  async destroy(): Promise<void> {
    const exits = [...this.#children].map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r))));
    this.destroySync();
    await Promise.race([Promise.all(exits), new Promise((r) => setTimeout(r, 5000))]);
  }

  async #ip(args: string[]): Promise<void> {
    await execFile('ip', args);
  }

  async #build(hostNames: readonly string[]): Promise<void> {
    const { hub, tag, subnet } = this;
    await this.#ip(['netns', 'add', hub]);
    this.#namespaces.push(hub);
    await this.#ip(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    await this.#ip(['-n', hub, 'link', 'set', 'br0', 'up']);
    await this.#ip(['-n', hub, 'link', 'set', 'lo', 'up']);
    // The test process's own leg.
    await this.#ip(['link', 'add', `sp${tag}r`, 'type', 'veth', 'peer', 'name', `sp${tag}q`]);
    await this.#ip(['link', 'set', `sp${tag}q`, 'netns', hub]);
    await this.#ip(['-n', hub, 'link', 'set', `sp${tag}q`, 'master', 'br0', 'up']);
    await this.#ip(['addr', 'add', `${this.testIp}/24`, 'dev', `sp${tag}r`]);
    await this.#ip(['link', 'set', `sp${tag}r`, 'up']);
    for (const [index, name] of hostNames.entries()) {
      const netns = `${PREFIX}${process.pid}-${tag}-${name}`;
      const ip = `${subnet}.${10 + index}`;
      await this.#ip(['netns', 'add', netns]);
      this.#namespaces.push(netns);
      await this.#ip(['-n', netns, 'link', 'set', 'lo', 'up']);
      await this.#ip(['link', 'add', `sp${tag}a${index}`, 'type', 'veth', 'peer', 'name', `sp${tag}b${index}`]);
      await this.#ip(['link', 'set', `sp${tag}a${index}`, 'netns', hub]);
      await this.#ip(['-n', hub, 'link', 'set', `sp${tag}a${index}`, 'master', 'br0', 'up']);
      await this.#ip(['link', 'set', `sp${tag}b${index}`, 'netns', netns]);
      await this.#ip(['-n', netns, 'link', 'set', `sp${tag}b${index}`, 'name', 'eth0']);
      await this.#ip(['-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await this.#ip(['-n', netns, 'link', 'set', 'eth0', 'up']);
      this.hosts.set(name, { name, netns, ip });
    }
  }
}

/**
 * Engine connection and capability checks (clear typed errors), and crash recovery: prepare()
 * removes containers of dead owners only — never those of live owners or unlabeled ones.
 */

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { afterAll, describe, expect, it } from 'vitest';

import { ContainerBackend, LABEL } from '../../backends/container/index.js';
import { processStartTime } from '../../backends/container/labels.js';
import { ErrorCode } from '../../src/errors.js';
import { ECHO_IMAGE, LIMITS, NO_EGRESS, buildEchoImage, podman, podmanAvailable } from './helpers.js';

const available = podmanAvailable();
const prepareContext = {
  poolName: 'ctest-engine',
  ownerId: 'engine-test',
  containerType: 'PythonLTS' as const,
  limits: LIMITS,
  network: NO_EGRESS,
};

describe.skipIf(!available)('container backend: engine and capability checks', () => {
  it('says which engine connection it uses', async () => {
    const backend = new ContainerBackend();
    try {
      await backend.prepare(prepareContext);
      expect(backend.connection).toMatch(/socket \/\S+\.sock/);
    } finally {
      await backend.close();
    }
  });

  it('fails with BACKEND_UNAVAILABLE when the given socket has no engine', async () => {
    const backend = new ContainerBackend({ socketPath: '/nonexistent/engine.sock' });
    await expect(backend.prepare(prepareContext)).rejects.toMatchObject({
      code: ErrorCode.BACKEND_UNAVAILABLE,
      message: expect.stringMatching(/no container engine answers on the socket \/nonexistent\/engine.sock/),
    });
    await backend.close();
  });

  it('starts its own podman service when none answers, and stops it on close()', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sandpool-engine-'));
    try {
      // This host has a podman socket already, so ask for the self-started path explicitly.
      const { connectEngine } = await import('../../backends/container/engine-connection.js');
      const started = await connectEngine({
        runDir: dir,
        log: () => {},
        socketPath: undefined,
        startPodman: true,
        skipWellKnown: true,
      });
      expect(started.kind).toBe('started');
      expect(started.description).toMatch(/podman system service started by this process/);
      await started.docker.ping();
      await started.close();
      await expect(started.docker.ping()).rejects.toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it('names a missing image and a missing OCI runtime', async () => {
    const noImage = new ContainerBackend({ image: 'localhost/sandpool/does-not-exist:1' });
    await expect(noImage.prepare(prepareContext)).rejects.toMatchObject({
      code: ErrorCode.BACKEND_UNAVAILABLE,
      message: expect.stringMatching(/image localhost\/sandpool\/does-not-exist:1 is missing.*npm run setup/),
    });
    await noImage.close();
    const gvisor = new ContainerBackend({ runtime: 'runsc' });
    await expect(gvisor.prepare(prepareContext)).rejects.toMatchObject({
      code: ErrorCode.BACKEND_UNAVAILABLE,
      message: expect.stringMatching(/OCI runtime "runsc"/),
    });
    await gvisor.close();
    const bogus = new ContainerBackend({ runtime: 'no-such-runtime' });
    await expect(bogus.prepare(prepareContext)).rejects.toMatchObject({
      message: expect.stringMatching(/"no-such-runtime" is not available/),
    });
    await bogus.close();
    expect(() => new ContainerBackend({ runtime: 'bad name!' })).toThrow(/runtime/);
  });
});

describe.skipIf(!available)('container backend: leftovers of dead owners', () => {
  const tag = randomBytes(3).toString('hex');
  const created: string[] = [];

  afterAll(() => {
    for (const name of created) spawnSync('podman', ['rm', '-f', name], { stdio: 'ignore' });
  });

  function run(name: string, labels: Record<string, string>): void {
    const args = ['create', '--name', name, '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];
    for (const [k, v] of Object.entries(labels)) args.push('--label', `${k}=${v}`);
    podman(...args, ECHO_IMAGE);
    created.push(name);
  }

  const exists = (name: string) => spawnSync('podman', ['container', 'exists', name]).status === 0;

  it('removes containers of a dead owner, keeps live owners and unlabeled containers', async () => {
    buildEchoImage();
    // A real process that has exited: its pid and start time identify a dead owner.
    const child = spawn('sleep', ['0']);
    const pid = child.pid!;
    const start = processStartTime(pid)!;
    await new Promise((resolve) => child.on('exit', resolve));
    const host = (await import('node:os')).hostname();
    const base = { [LABEL.managed]: 'container', [LABEL.pool]: 'ctest-reap', [LABEL.session]: 'x', [LABEL.owner]: 'someone' };
    run(`reap-dead-${tag}`, { ...base, [LABEL.ownerPid]: String(pid), [LABEL.ownerStart]: start, [LABEL.ownerHost]: host });
    // pid reuse: our own live pid but a different start time is a dead owner too.
    run(`reap-reused-${tag}`, {
      ...base,
      [LABEL.ownerPid]: String(process.pid),
      [LABEL.ownerStart]: '1',
      [LABEL.ownerHost]: host,
    });
    run(`keep-live-${tag}`, {
      ...base,
      [LABEL.ownerPid]: String(process.pid),
      [LABEL.ownerStart]: processStartTime(process.pid)!,
      [LABEL.ownerHost]: host,
    });
    run(`keep-foreign-${tag}`, {
      ...base,
      [LABEL.ownerPid]: String(pid),
      [LABEL.ownerStart]: start,
      [LABEL.ownerHost]: 'another-host',
    });
    run(`keep-unlabeled-${tag}`, {});
    const backend = new ContainerBackend();
    try {
      await backend.prepare({
        ...prepareContext,
        containerType: 'CustomContainer',
        customContainer: { image: ECHO_IMAGE, env: [], targetPort: 8080, probes: [] },
      });
    } finally {
      await backend.close();
    }
    expect(exists(`reap-dead-${tag}`)).toBe(false);
    expect(exists(`reap-reused-${tag}`)).toBe(false);
    expect(exists(`keep-live-${tag}`)).toBe(true);
    expect(exists(`keep-foreign-${tag}`)).toBe(true);
    expect(exists(`keep-unlabeled-${tag}`)).toBe(true);
  }, 60_000);

  it('a SIGKILLed owner leaves containers, an egress network and its firewall chain that the next prepare() removes', async () => {
    // Unique per run: the machine is shared, and network names are per pool.
    const poolName = `ctest-orphan-${randomBytes(3).toString('hex')}`;
    const script = `
      import { ContainerBackend } from ${JSON.stringify(new URL('../../backends/container/index.ts', import.meta.url).pathname)};
      const b = new ContainerBackend();
      const limits = ${JSON.stringify(LIMITS)};
      // An EgressEnabled pool: a network (and, as root with iptables, a SANDPOOL-CT chain) of this owner.
      await b.prepare({ poolName: ${JSON.stringify(poolName)}, ownerId: 'doomed', containerType: 'PythonLTS', limits,
        network: { egress: 'EgressEnabled', allow: [] } }).catch(() => {}); // the network exists even if isolation is refused
      const s = await b.create({ sessionId: 'orphan', poolName: 'ctest-orphan', ownerId: 'doomed', containerType: 'CustomContainer', limits,
        network: { egress: 'EgressDisabled', allow: [] }, customContainer: { image: ${JSON.stringify(ECHO_IMAGE)}, env: [], targetPort: 8080, probes: [] } },
        { onExit() {} });
      process.stdout.write('ready ' + s.etag + '\\n');
      setInterval(() => {}, 1000);
    `;
    const dir = mkdtempSync(join(tmpdir(), 'sandpool-orphan-'));
    const file = join(dir, 'owner.mts');
    (await import('node:fs')).writeFileSync(file, script);
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const id = await new Promise<string>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /ready (\w+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`owner exited early (${code})`)));
    });
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    expect(podman('ps', '-a', '--filter', `id=${id}`, '--format', '{{.ID}}')).not.toBe('');
    // The dead owner's network carries its owner labels, so it can be told from live owners'.
    const orphanNetworks = () =>
      podman('network', 'ls', '--filter', `label=sandpool.owner-pid=${child.pid}`, '--format', '{{.Name}}')
        .split('\n')
        .filter(Boolean);
    expect(orphanNetworks()).toEqual([`sandpool-egress-${poolName}`]);
    // A chain whose bridge is gone (its network was removed by hand): rules that match nothing.
    const iface = `sbx${randomBytes(4).toString('hex')}`;
    const chains = () => execFileSync('iptables', ['-w', '-S'], { encoding: 'utf8' });
    const root = process.getuid?.() === 0;
    const ipt = (...args: string[]) => execFileSync('iptables', ['-w', ...args]);
    if (root) {
      ipt('-N', `SANDPOOL-CT-${iface}`);
      ipt('-A', `SANDPOOL-CT-${iface}`, '-o', iface, '-j', 'DROP');
      ipt('-I', 'FORWARD', '-i', iface, '-j', `SANDPOOL-CT-${iface}`);
      ipt('-I', 'INPUT', '-i', iface, '-j', 'DROP');
      ipt('-I', 'INPUT', '-i', iface, '-d', '10.254.0.1', '-p', 'udp', '--dport', '53', '-j', 'ACCEPT');
    }
    const backend = new ContainerBackend();
    try {
      await backend.prepare({
        ...prepareContext,
        containerType: 'CustomContainer',
        customContainer: { image: ECHO_IMAGE, env: [], targetPort: 8080, probes: [] },
      });
    } finally {
      await backend.close();
      rmSync(dir, { recursive: true, force: true });
    }
    expect(podman('ps', '-a', '--filter', `id=${id}`, '--format', '{{.ID}}')).toBe('');
    expect(orphanNetworks()).toEqual([]);
    if (root) expect(chains()).not.toMatch(new RegExp(`(SANDPOOL-CT-${iface}|-i ${iface} )`));
  }, 120_000);
});

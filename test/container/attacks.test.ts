/**
 * Attack suite for the out-of-process backends, through a real SessionPool, with hostile Python:
 * host files, /proc and mountinfo, privileged operations and devices, host ports and the embedding
 * server, other sessions, resource bombs and runaway code, and the files API against planted
 * symlinks and path traversal. After every attack the embedding process, the pool and a bystander
 * session (same session, state intact) must be healthy, and nothing may leak.
 *
 * Container: runs on every engine the container tests use (Podman, and setup's Docker engine);
 * under CI=true a missing engine fails the run.
 * VM: see vm-attacks.test.ts (gated on the guest image, like test/vm).
 */

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { SessionPool } from '../../src/index.js';
import { buildEchoImage, containerEngines, containerOfSession, containersOf } from '../container/helpers.js';
import {
  Bystander,
  expectHostHealthy,
  expectUnreachable,
  startHostFixtures,
  type HostFixtures,
} from '../suites/sandbox-attacks/harness.js';
import { fileApiAttacks } from '../suites/sandbox-attacks/file-api-attacks.js';
import { hostReachProbe, namespaceProbe, networkProbe, probeResult } from '../suites/sandbox-attacks/probe-scripts.js';
import { resourceBombs } from '../suites/sandbox-attacks/resource-bombs.js';

const T = 240_000;

for (const engine of containerEngines()) {
  describe(`container sessions under attack on ${engine.name} (runc, through a SessionPool)`, () => {
    let fixtures: HostFixtures;
    let pool: SessionPool;
    let bystander: Bystander;

    const liveContainers = () => containersOf(pool.ownerId, engine).length;

    beforeAll(async () => {
      fixtures = await startHostFixtures();
      pool = new SessionPool({
        name: 'sec-ctr',
        backend: new ContainerBackend(engine.backendOptions),
        containerType: 'PythonLTS',
        readySessionInstances: 1,
        maxConcurrentSessions: 6,
        limits: {
          memoryMb: 256,
          pids: 64,
          diskMb: 32,
          maxFileSizeBytes: 4 << 20,
          outputMaxBytes: 64 << 10,
          executionTimeoutSeconds: 60,
        },
      });
      await pool.start();
      bystander = new Bystander(pool);
      await bystander.plant();
    }, 300_000);

    afterAll(async () => {
      const owner = pool?.ownerId;
      await pool?.close();
      await fixtures?.close();
      if (owner !== undefined) expect(containersOf(owner, engine)).toEqual([]);
    }, 120_000);

    /** After every attack: host process, pool and bystander healthy; containers match live sessions. */
    const afterAttack = async () => {
      await expectHostHealthy(pool);
      await bystander.expectHealthy();
      await expect
        .poll(
          () => {
            const s = pool.stats();
            return liveContainers() <= s.allocated + s.ready + s.pending;
          },
          { timeout: 60_000, interval: 500 },
        )
        .toBe(true);
      expect(fixtures.hits()).toBe(0);
    };

    it(
      'sees nothing of the host: files, processes, /proc/1, mountinfo',
      async () => {
        const session = await pool.acquire(SessionPool.generateIdentifier());
        const run = await session.execute({ code: hostReachProbe(fixtures.facts), timeoutInSeconds: 60 });
        expect(run.status, run.stderr).toBe('Succeeded');
        const r = probeResult(run.stdout);
        expect(r['hostCanaryExists']).toBe(false);
        expect(r['repoFileExists']).toBe(false);
        // No container engine socket (root on the host) is reachable from inside.
        for (const sock of [
          '/run/podman/podman.sock',
          '/run/sandpool-docker/docker.sock',
          '/var/run/docker.sock',
          '/run/docker.sock',
          '/run/containerd/containerd.sock',
        ]) {
          expect(r[`engine ${sock}`], sock).toBe(false);
        }
        const hostShadow = createHash('sha256').update(readFileSync('/etc/shadow')).digest('hex');
        expect(r['shadowHash']).not.toBe(hostShadow);
        expect(String(r['shadowHash'])).toMatch(/^ERR PermissionError/); // uid 61000 cannot read even its own
        // The engine's init (podman-init, docker-init) running the agent, or on Podman the pause init
        // the zygote forks agents beside (backends/container/zygote.ts): never the host's.
        const pid1 = String(r['pid1Cmdline']);
        expect(
          pid1.startsWith(`${engine.initPath} -- /opt/sandpool/entrypoint.sh `) ||
            (engine.name === 'podman' && pid1 === '/run/sandpool-init -P'),
          pid1,
        ).toBe(true);
        // /proc/1/environ is the container init's (same uid as the session, so readable): the canary scan
        // below covers it, and the embedding process's environment (which holds the canary) is not in it.
        expect(r['pid1Environ']).toBe('readable');
        const proc = r['proc'] as { count: number; canaryHits: string[] };
        expect(proc.canaryHits).toEqual([]);
        expect(proc.count).toBeLessThan(20);
        const mountinfo = String(r['mountinfo']);
        // The host's directories are never mounted in: not the repo, not the test's temp dir, not /home or /root.
        for (const hostPath of [
          import.meta.dirname,
          fixtures.facts.hostCanaryFile.replace(/\/[^/]+$/, ''),
          '/home',
          '/root',
          '/work',
        ]) {
          const mountRoots = mountinfo.split('\n').map((line) => line.split(' ')[3] ?? '');
          expect(
            mountRoots.filter((root) => root === hostPath || root.startsWith(`${hostPath}/`)),
            hostPath,
          ).toEqual([]);
        }
        await session.stop();
        await afterAttack();
      },
      T,
    );

    it(
      'cannot mount, ptrace, open raw sockets, load modules, or use host devices',
      async () => {
        const session = await pool.acquire(SessionPool.generateIdentifier());
        const run = await session.execute({ code: hostReachProbe(fixtures.facts), timeoutInSeconds: 60 });
        const r = probeResult(run.stdout);
        expect(r['uid']).toBe(61000);
        expect(r['seccomp']).toBe('2'); // a seccomp filter (sandpool's profile) is in force
        for (const key of ['mount', 'umountRoot', 'unshareMountNs', 'finitModule', 'initModule', 'kexecLoad']) {
          expect(String(r[key]), key).toMatch(/^ERR E(PERM|ACCES|NOSYS)/);
        }
        // Host processes are out of the session's pid namespace: neither traceable nor signallable.
        // (ptrace of the session's own processes is allowed, as for any Linux user: it can only harm itself.)
        expect(String(r['ptraceHostPid'])).toMatch(/^ERR E(SRCH|PERM)/);
        expect(String(r['killHostPid'])).toMatch(/^ERR ProcessLookupError/);
        // sandpool's seccomp profile refuses a user namespace with EPERM even from the multi-threaded
        // kernel process (the kernel alone would say EINVAL there, which proves nothing).
        expect(String(r['unshareUserNs'])).toBe('ERR EPERM');
        expect(String(r['rawIcmp'])).toMatch(/^ERR PermissionError/);
        expect(String(r['packetSocket'])).toMatch(/^ERR PermissionError/);
        expect(String(r['mknodBlock'])).toMatch(/^ERR PermissionError/);
        for (const key of ['sysrq', 'coreStorePattern'])
          expect(String(r[key]), key).toMatch(/^ERR (PermissionError|FileNotFoundError|OSError)/);
        // Only the harmless character devices exist: no block device, no /dev/mem, /dev/kvm, /dev/fuse.
        const devices = r['devices'] as Record<string, string>;
        expect(Object.values(devices).filter((d) => d.startsWith('b'))).toEqual([]);
        const allowed = new Set(['c1:3', 'c1:5', 'c1:7', 'c1:8', 'c1:9', 'c5:0', 'c5:1', 'c5:2', 'c136:0']);
        for (const [path, device] of Object.entries(devices)) {
          // Pseudo-terminals (major 136) are the session's own; everything else must be a known null-like device.
          expect(allowed.has(device) || device.startsWith('c136:'), `${path} ${device}`).toBe(true);
        }
        for (const name of [
          '/dev/mem',
          '/dev/kmem',
          '/dev/port',
          '/dev/kmsg',
          '/dev/sda',
          '/dev/vda',
          '/dev/nvme0n1',
          '/dev/kvm',
          '/dev/fuse',
        ]) {
          expect(String(r[`open ${name}`]), name).toMatch(/^ERR (FileNotFoundError|PermissionError)/);
        }
        await session.stop();
        await afterAttack();
      },
      T,
    );

    it(
      'cannot create namespaces or open kernel-facing sockets, even from a single-threaded child (seccomp)',
      async () => {
        const session = await pool.acquire(SessionPool.generateIdentifier());
        const run = await session.execute({ code: namespaceProbe(), timeoutInSeconds: 120 });
        expect(run.status, run.stderr).toBe('Succeeded');
        const r = probeResult(run.stdout);
        // The child really is single-threaded: the kernel's own answer there would be "allowed".
        expect(r['childThreads']).toBe('1');
        for (const ns of ['User', 'Mount', 'Net', 'Pid', 'Ipc', 'Uts', 'Cgroup']) {
          expect(r[`unshare${ns}`], `unshare ${ns}`).toBe('ERR EPERM');
          expect(r[`clone${ns}`], `clone ${ns}`).toBe('ERR EPERM');
        }
        expect(r['unshareUserNet']).toBe('ERR EPERM');
        expect(r['setns']).toBe('ERR EPERM');
        // clone3's flags cannot be filtered: ENOSYS, so libc falls back to clone (where they are).
        expect(r['clone3']).toBe('ERR ENOSYS');
        const refusedSockets = [
          'rawIcmp',
          'rawIcmp6',
          'rawTcp',
          'packetRaw',
          'packetDgram',
          'netlinkNetfilter',
          'netlinkGeneric',
          'netlinkAudit',
          'netlinkUevent',
          'netlinkXfrm',
          'netlinkSockDiag',
          'familyAlg',
          'familyVsock',
          'familyKey',
          'familyXdp',
          'familyBluetooth',
          'familyCan',
          'familyTipc',
          'familyRds',
          'familyLlc',
          'sctp',
        ];
        for (const key of refusedSockets) expect(r[key], key).toBe('ERR PermissionError:EPERM');
        // The outside review's attack: `unshare -rn` from a subprocess.
        for (const key of ['cliUnshareRn', 'cliUnshareUser', 'cliUnshareMapRootNet']) {
          const cli = r[key] as { code: number; stdout: string; stderr: string };
          expect(cli.code, key).not.toBe(0);
          expect(cli.stdout, key).toBe('');
          expect(cli.stderr, key).toMatch(/Operation not permitted/);
        }
        // Positive controls: ordinary networking, threads and processes still work.
        for (const key of ['tcp', 'udp6', 'unix', 'netlinkRoute']) expect(r[key], key).toBe('opened');
        expect(r['ifNames']).toEqual(['lo']);
        expect(r['getaddrinfo']).toContain('127.0.0.1');
        expect(r['thread']).toBe('thread ran');
        expect(r['fork']).toBe('forked');
        expect(r['subprocess']).toBe('sub');
        expect(r['nodeWorker']).toBe('42');
        await session.stop();
        await afterAttack();
      },
      T,
    );

    it(
      'reaches no host port, not the embedding server, the gateway or the metadata address (EgressDisabled)',
      async () => {
        const session = await pool.acquire(SessionPool.generateIdentifier());
        const run = await session.execute({ code: networkProbe(fixtures.facts), timeoutInSeconds: 120 });
        expect(run.status, run.stderr).toBe('Succeeded');
        const r = probeResult(run.stdout);
        expect(r['interfaces']).toEqual(['lo']);
        expectUnreachable(
          r,
          fixtures.facts.targets.map(([label]) => label),
        );
        await session.stop();
        await afterAttack();
      },
      T,
    );

    it(
      'cannot see or reach another session: files, /tmp, abstract sockets, agent sockets',
      async () => {
        const a = await pool.acquire(SessionPool.generateIdentifier());
        const b = await pool.acquire(SessionPool.generateIdentifier());
        const plant = await a.execute({
          code: [
            'import socket, os',
            "open('/mnt/data/a-secret', 'w').write('a')",
            "open('/tmp/a-secret', 'w').write('a')",
            'srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
            "srv.bind('\\0sandpool-security-a')",
            'srv.listen()',
            'sorted(os.listdir("/run/sandpool"))',
          ].join('\n'),
        });
        expect(plant.status, plant.stderr).toBe('Succeeded');
        const look = await b.execute({
          code: [
            'import socket, os, json',
            'r = {}',
            "r['data'] = os.listdir('/mnt/data')",
            "r['tmp'] = os.path.exists('/tmp/a-secret')",
            's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
            'try:',
            "    s.connect('\\0sandpool-security-a'); r['abstract'] = 'connected'",
            'except OSError as e:',
            "    r['abstract'] = type(e).__name__",
            "r['run'] = sorted(os.listdir('/run/sandpool'))",
            'print(json.dumps(r))',
          ].join('\n'),
        });
        const r = probeResult(look.stdout);
        expect(r['data']).toEqual([]);
        expect(r['tmp']).toBe(false);
        expect(r['abstract']).not.toBe('connected');
        // Each session's /run/sandpool holds its own agent socket only, never another session's.
        expect(r['run']).toEqual(JSON.parse(String(plant.result).replaceAll("'", '"')));
        await a.stop();
        await b.stop();
        await afterAttack();
      },
      T,
    );

    // /run/sandpool is the session's host directory (bind-mounted for the agent's socket). Once the
    // socket exists the backend hands the directory to root (0755): nothing can be written there.
    it(
      'cannot write past its disk cap through the bind-mounted agent directory',
      async () => {
        const session = await pool.acquire(SessionPool.generateIdentifier());
        const marker = `fill-${Date.now()}`;
        try {
          const fill = await session.execute({
            code: [
              'import os, json',
              'written, err = 0, None',
              'try:',
              `    with open('/run/sandpool/${marker}', 'wb') as f:`,
              '        while written < 96 * 1024 * 1024:',
              "            f.write(b'\\0' * (1024 * 1024)); written += 1024 * 1024",
              'except OSError as e:',
              '    err = e.errno',
              'print(json.dumps({"written": written, "errno": err}))',
            ].join('\n'),
            timeoutInSeconds: 120,
          });
          const r = probeResult(fill.stdout) as { written: number };
          expect(r.written).toBeLessThanOrEqual(32 * 1024 * 1024);
        } finally {
          await session.stop();
          // Whatever got written is gone with the session's host directory.
          expect(execFileSync('find', ['/run/sandpool/container/sessions', '-name', marker], { encoding: 'utf8' }).trim()).toBe(
            '',
          );
          await afterAttack();
        }
      },
      T,
    );

    resourceBombs(() => ({ pool, afterAttack, memoryMb: 256, diskMb: 32, outputMaxBytes: 64 << 10, pids: 64 }), T);

    fileApiAttacks(() => ({ pool, afterAttack }), T);
  });

  describe(`container sessions under attack on ${engine.name}: EgressEnabled network`, () => {
    let fixtures: HostFixtures;
    let pool: SessionPool;

    beforeAll(async () => {
      fixtures = await startHostFixtures();
      pool = new SessionPool({
        name: 'sec-ctr-egress',
        backend: new ContainerBackend(engine.backendOptions),
        containerType: 'PythonLTS',
        readySessionInstances: 2,
        maxConcurrentSessions: 4,
        network: { egress: 'EgressEnabled' },
        limits: { memoryMb: 256, pids: 64, diskMb: 32, executionTimeoutSeconds: 60 },
      });
      await pool.start();
    }, 300_000);

    afterAll(async () => {
      const owner = pool?.ownerId;
      await pool?.close();
      await fixtures?.close();
      if (owner !== undefined) expect(containersOf(owner, engine)).toEqual([]);
    }, 120_000);

    it(
      'has a route out, yet reaches no host service, gateway, metadata address or other session',
      async () => {
        const listener = await pool.acquire(SessionPool.generateIdentifier());
        const attacker = await pool.acquire(SessionPool.generateIdentifier());
        const listen = await listener.execute({
          code: [
            'import socket, threading',
            'srv = socket.socket()',
            'srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
            "srv.bind(('0.0.0.0', 9000))",
            'srv.listen()',
            "threading.Thread(target=lambda: [srv.accept()[0].sendall(b'session-a') for _ in iter(int, 1)], daemon=True).start()",
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.connect(('192.0.2.77', 9)); u.getsockname()[0]",
          ].join('\n'),
        });
        expect(listen.status, listen.stderr).toBe('Succeeded');
        const peer = String(listen.result);
        expect(peer).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
        const facts = { ...fixtures.facts, targets: [...fixtures.facts.targets, ['other session', peer, 9000] as const] };
        const run = await attacker.execute({ code: networkProbe(facts), timeoutInSeconds: 120 });
        expect(run.status, run.stderr).toBe('Succeeded');
        const r = probeResult(run.stdout);
        expect((r['interfaces'] as string[]).length).toBeGreaterThan(1); // really networked: not a vacuous pass
        // The loopback listener is the session's own loopback: refused there, never the host's.
        expectUnreachable(
          r,
          facts.targets.map(([label]) => label),
        );
        expect(fixtures.hits()).toBe(0);
        // Positive control: the listener answers inside its own session.
        const self = await listener.execute({
          code: "import socket\ns = socket.create_connection(('127.0.0.1', 9000), 3)\ns.recv(16).decode()",
        });
        expect(self.result).toBe('session-a');
      },
      T,
    );
  });

  describe(`custom-container sessions on ${engine.name} get the same seccomp profile`, () => {
    let pool: SessionPool;

    beforeAll(async () => {
      pool = new SessionPool({
        name: 'sec-custom',
        backend: new ContainerBackend(engine.backendOptions),
        containerType: 'CustomContainer',
        readySessionInstances: 1,
        maxConcurrentSessions: 2,
        customContainerTemplate: { image: buildEchoImage(undefined, engine), targetPort: 8080 },
      });
      await pool.start();
    }, 300_000);

    afterAll(async () => {
      const owner = pool?.ownerId;
      await pool?.close();
      if (owner !== undefined) expect(containersOf(owner, engine)).toEqual([]);
    }, 120_000);

    it(
      'refuses `unshare -rn` and nf_tables netlink in a custom image too',
      async () => {
        const session = await pool.acquire(SessionPool.generateIdentifier());
        expect((await session.fetch(new Request('http://session/hello'))).status).toBe(200);
        const name = containerOfSession(session.info().sessionId, engine);
        // A process exec'd into the container runs under the container's seccomp profile.
        const attempt = (script: string) =>
          engine
            .cli('exec', name, 'sh', '-c', `${script} 2>&1; echo "exit=$?"`)
            .split('\n')
            .map((l) => l.trim());
        const unshare = attempt('unshare -rn sh -c "echo inside"');
        expect(unshare).not.toContain('inside');
        expect(unshare.join(' ')).toMatch(/Operation not permitted.*exit=[1-9]/);
        // nf_tables' netlink family opens under the engine's default profile; sandpool's refuses it.
        const netfilter = attempt(
          `python3 -c "import socket; socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12); print('opened')"`,
        );
        expect(netfilter).not.toContain('opened');
        expect(netfilter.join(' ')).toMatch(/PermissionError: \[Errno 1\] Operation not permitted/);
        await session.stop();
      },
      T,
    );
  });
}

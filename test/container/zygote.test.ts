/**
 * Sessions started from the zygote (backends/container/zygote.ts, agent/sandpool_agent/zygote.py)
 * against sessions the engine starts itself, on real Podman: same confinement for the Python
 * kernel where session code runs (identity, capabilities, no_new_privs, seccomp filters, limits,
 * cgroups, namespaces, root), and what forking from a shared process must not share: RNG state,
 * files, state, the agent's own modules. No timings: speed lives in the bench.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { ContainerBackend } from '../../backends/container/index.js';
import { PAUSE_COMMAND, PAUSE_IN_CONTAINER } from '../../backends/container/container-spec.js';
import { DEFAULT_IMAGE } from '../../backends/container/options.js';
import { PAUSE_BINARY, Zygote } from '../../backends/container/zygote.js';
import type { BackendSession, ExecuteRequest } from '../../src/backend.js';
import { containersOf, newOwnerId, podman, podmanAvailable, spec } from './helpers.js';

const available = podmanAvailable() && process.getuid?.() === 0;

function python(code: string): ExecuteRequest {
  return { language: 'python', code, timeoutMs: 60_000, outputMaxBytes: 1 << 20 };
}

/** What confines the kernel, as the kernel itself sees it (pids and per-process ids left out). */
const CONFINEMENT = `
import os, json
def status(pid):
    keep = ('Uid', 'Gid', 'Groups', 'CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb', 'NoNewPrivs', 'Seccomp', 'Seccomp_filters')
    return {k: v.strip() for k, _, v in (l.partition(':') for l in open('/proc/%s/status' % pid)) if k in keep}
def limits(pid):
    return [l.split()[-3:] for l in open('/proc/%s/limits' % pid)][1:]
json.dumps({
  'self': status('self'), 'init': status(1),
  'limits': limits('self'), 'initLimits': limits(1),
  'cgroup': open('/proc/self/cgroup').read(), 'initCgroup': open('/proc/1/cgroup').read(),
  'ns': {n: os.readlink('/proc/self/ns/' + n) for n in ('mnt', 'pid', 'net', 'ipc', 'uts', 'cgroup', 'user')},
  'initNs': {n: os.readlink('/proc/1/ns/' + n) for n in ('mnt', 'pid', 'net', 'ipc', 'uts', 'cgroup', 'user')},
  'root': sorted(os.listdir('/')), 'cwd': os.getcwd(), 'umask': os.umask(0o22),
  'env': sorted(k for k in os.environ if k not in ('HOSTNAME',)),
})`;

describe.skipIf(!available)('container sessions from the zygote', () => {
  const ownerId = newOwnerId();
  let zygote: ContainerBackend;
  let classic: ContainerBackend;
  const live: [ContainerBackend, BackendSession][] = [];
  const limits = { memoryMb: 256, pids: 64, diskMb: 16 };

  async function create(backend: ContainerBackend): Promise<BackendSession> {
    const session = await backend.create(spec(ownerId, { limits: { ...spec(ownerId).limits, ...limits } }), {
      onExit: () => undefined,
    });
    live.push([backend, session]);
    // A zygote session's container runs only the pause init; the agent was forked into it.
    const pid1 = await run(backend, session, "open('/proc/1/cmdline').read().replace('\\0', ' ').strip()");
    if (backend === zygote) expect(pid1).toBe('/run/sandpool-init -P');
    else expect(pid1.startsWith('/run/podman-init -- /opt/sandpool/entrypoint.sh '), pid1).toBe(true);
    if (backend === zygote) expect(zygote.zygoteDisabledReason).toBeUndefined();
    // The agent forked its first kernel from itself (so the kernel's command line is the zygote's),
    // which it does only while it has a single thread: its own threads start after that fork.
    const kernel = await run(backend, session, "open('/proc/self/cmdline').read()");
    expect(kernel).toMatch(backend === zygote ? /sandpool_agent\/zygote\.py/ : /sandpool_agent\/python_kernel\.py/);
    return session;
  }

  async function run(backend: ContainerBackend, session: BackendSession, code: string): Promise<string> {
    const outcome = await backend.execute(session, python(code));
    expect(outcome.status, outcome.stderr).toBe('Succeeded');
    return String(outcome.result);
  }

  beforeAll(async () => {
    zygote = new ContainerBackend();
    classic = new ContainerBackend({ zygote: false });
    const context = { ...spec(ownerId), signal: undefined };
    await zygote.prepare(context);
    await classic.prepare(context);
  }, 300_000);

  afterAll(async () => {
    await Promise.all(live.map(([backend, session]) => backend.destroy(session, { reason: 'stopped' })));
    await zygote?.close();
    await classic?.close();
    expect(containersOf(ownerId)).toEqual([]);
  }, 120_000);

  it('is used on this host (local rootful Podman with runc)', () => {
    expect(zygote.zygoteDisabledReason).toBeUndefined();
    expect(classic.zygoteDisabledReason).toMatch(/turned off/);
  });

  it('confines the kernel exactly like an engine-started session', async () => {
    const forked = JSON.parse(await run(zygote, await create(zygote), CONFINEMENT)) as Record<string, unknown>;
    const started = JSON.parse(await run(classic, await create(classic), CONFINEMENT)) as Record<string, unknown>;
    const self = forked['self'] as Record<string, string>;
    // Against its own container's first process: identity, capabilities, seccomp, limits, cgroups, namespaces.
    expect(self).toMatchObject({ Uid: '61000\t61000\t61000\t61000', CapEff: '0000000000000000', NoNewPrivs: '1', Seccomp: '2' });
    for (const key of [
      'Uid',
      'Gid',
      'Groups',
      'CapInh',
      'CapPrm',
      'CapEff',
      'CapBnd',
      'CapAmb',
      'NoNewPrivs',
      'Seccomp',
      'Seccomp_filters',
    ]) {
      expect(self[key], key).toBe((forked['init'] as Record<string, string>)[key]);
    }
    expect(forked['limits']).toEqual(forked['initLimits']);
    expect(forked['cgroup']).toBe(forked['initCgroup']);
    expect(forked['ns']).toEqual(forked['initNs']);
    // And against a session the engine started: the same everything, root, cwd, umask and environment.
    expect(self).toEqual(started['self']);
    expect(forked['limits']).toEqual(started['limits']);
    for (const key of ['root', 'cwd', 'umask', 'env']) expect(forked[key], key).toEqual(started[key]);
  }, 180_000);

  it('shares no random state, files or variables between sessions forked from one zygote', async () => {
    const [a, b] = [await create(zygote), await create(zygote)];
    const draw =
      'import random, os, uuid, numpy, secrets\n' +
      'repr((random.random(), float(numpy.random.random()), os.urandom(8).hex(), uuid.uuid4().hex, secrets.token_hex(8)))';
    const [x, y] = [await run(zygote, a, draw), await run(zygote, b, draw)];
    const split = (s: string) => s.slice(1, -1).split(', ');
    for (const [i, value] of split(x).entries()) expect(value, `draw ${i}`).not.toBe(split(y)[i]);
    await run(zygote, a, "open('/mnt/data/mine.txt', 'w').write('a')\nsecret = 41");
    expect(await run(zygote, b, "import os\n(os.listdir('/mnt/data'), 'secret' in globals())")).toBe('([], False)');
    expect(await run(zygote, a, 'secret + 1')).toBe('42');
  }, 180_000);

  it("lets session modules named like the agent's own be imported (the agent's are not in the kernel)", async () => {
    const session = await create(zygote);
    await run(zygote, session, "open('/mnt/data/files.py', 'w').write('WHO = \"mine\"')");
    expect(await run(zygote, session, 'import files\nfiles.WHO')).toBe('mine');
    expect(
      await run(
        zygote,
        session,
        "import sys\nsorted(m for m in ('server', 'execution', 'confine', 'zygote') if m in sys.modules)",
      ),
    ).toBe('[]');
    expect(await run(zygote, session, "import sys\n[m for m in ('numpy', 'pandas', 'matplotlib') if m in sys.modules]")).toBe(
      "['numpy', 'pandas', 'matplotlib']",
    );
  }, 120_000);

  it('restarts a kernel that died, and keeps the pids limit on what it runs', async () => {
    const session = await create(zygote);
    const crash = await zygote.execute(session, python('import os\nos.kill(os.getpid(), 9)'));
    expect(crash).toMatchObject({ status: 'Failed', sessionState: 'restarted' });
    expect(await run(zygote, session, 'import numpy\nint(numpy.arange(4).sum())')).toBe('6');
    const bomb = await zygote.execute(
      session,
      python(
        'import subprocess\nprocs = []\ntry:\n    for _ in range(200):\n        procs.append(subprocess.Popen(["sleep", "30"]))\nexcept OSError as e:\n    print("stopped", len(procs), e.errno)\nfor p in procs:\n    p.kill()',
      ),
    );
    expect(bomb.stdout).toMatch(/^stopped \d+ 11/);
    expect(Number(/stopped (\d+)/.exec(bomb.stdout)?.[1])).toBeLessThan(limits.pids);
  }, 180_000);

  it('refuses to enter anything but an unprivileged container whose pause process already runs', async () => {
    const z = await Zygote.start({ image: DEFAULT_IMAGE, log: () => undefined });
    const started: string[] = [];
    const pause = (...flags: string[]) => {
      const id = podman(
        'run',
        '-d',
        '--rm',
        '--network',
        'none',
        '--label',
        `sandpool.owner=${ownerId}`,
        '-v',
        `${PAUSE_BINARY}:${PAUSE_IN_CONTAINER}:ro`,
        '--entrypoint',
        PAUSE_IN_CONTAINER,
        ...flags,
        DEFAULT_IMAGE,
        '-P',
      );
      started.push(id);
      return { id, pid: Number(podman('inspect', '--format', '{{.State.Pid}}', id)) };
    };
    try {
      const argv = ['--listen-unix', '/tmp/x.sock'];
      // A host process is not the container's first process: its cgroups do not name the container.
      const ok = pause('--user', '61000:61000', '--cap-drop', 'all');
      await expect(z.spawnAgent({ id: ok.id, pid: process.pid }, PAUSE_COMMAND, argv)).rejects.toThrow(
        /not in the container's cgroups/,
      );
      // A first process that does not run the expected command (yet) is not entered.
      await expect(z.spawnAgent(ok, ['/bin/sh'], argv)).rejects.toThrow(/did not start/);
      // Root, or holding capabilities: never entered (the agent could not be confined like it).
      await expect(z.spawnAgent(pause('--user', '0:0'), PAUSE_COMMAND, argv)).rejects.toThrow(/capabilities|root/);
      await expect(z.spawnAgent(pause('--user', '61000:61000', '--cap-add', 'NET_RAW'), PAUSE_COMMAND, argv)).rejects.toThrow(
        /capabilities/,
      );
      expect(z.alive).toBe(true); // a refused spawn does not harm the zygote
    } finally {
      for (const id of started) podman('rm', '-f', id);
      await z.close();
    }
  }, 180_000);
});

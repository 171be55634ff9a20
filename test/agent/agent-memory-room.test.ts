/**
 * The agent's memory room (agent/sandpool_agent/memory_room.py) against a fake cgroup and a real
 * tmpfs (/dev/shm): an upload may take only what the memory limit leaves above the reserve, the
 * chunk that would pass it is refused with NO_SPACE and the temp file removed; a data directory on
 * disk, or a cgroup without a limit, is never bounded. The real thing (a container's own cgroup and
 * /mnt/data tmpfs) is tested through the server in test/server/uploads.containers.test.ts.
 */

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { describe, expect, it } from 'vitest';

import { PYTHON } from './agent-harness.js';

// The agent runs as `python3 agent/sandpool_agent`: its modules import each other by plain name.
const AGENT = join(import.meta.dirname, '..', '..', 'agent', 'sandpool_agent');

function python(script: string): Record<string, unknown> {
  const r = spawnSync(PYTHON, ['-c', script], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: AGENT } });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
}

const PRELUDE = `
import json, os, tempfile, shutil
from memory_room import MemoryRoom, MIB
from files import DataDir, FileOpError
def fake_cgroup(limit, current, v1=False):
    d = tempfile.mkdtemp()
    if v1:
        os.mkdir(os.path.join(d, 'memory'))
        open(os.path.join(d, 'memory', 'memory.limit_in_bytes'), 'w').write('9223372036854771712' if limit == 'max' else limit)
        open(os.path.join(d, 'memory', 'memory.usage_in_bytes'), 'w').write(str(current))
    else:
        open(os.path.join(d, 'memory.max'), 'w').write(limit)
        open(os.path.join(d, 'memory.current'), 'w').write(str(current))
    return d
`;

describe.skipIf(!existsSync('/dev/shm'))('agent memory room', () => {
  it('bounds uploads on a tmpfs by what the memory limit leaves, and refuses before writing', () => {
    const r = python(`${PRELUDE}
cg = fake_cgroup(str(256 * MIB), 100 * MIB)
root = tempfile.mkdtemp(dir='/dev/shm')
room = MemoryRoom(root, cgroup=cg)
out = {'active': room.active, 'room': room.room() // MIB, 'reserve': room.reserve // MIB}
data = DataDir(root, memory_room=room)
up = data.begin_upload('big.bin', 1 << 40)
up.write(b'x' * (64 * MIB))                      # fits: 256 - 100 - 32 = 124 MiB of room
open(os.path.join(cg, 'memory.current'), 'w').write(str(164 * MIB))  # the tmpfs pages are charged
try:
    up.write(b'x' * (64 * MIB))                  # 60 MiB left: refused, nothing written
    out['second'] = 'written'
except FileOpError as e:
    out['second'] = e.code
    out['message'] = e.message
out['leftovers'] = os.listdir(root)
try:
    data.begin_upload('more.bin', 1 << 40, size=61 * MIB)
    out['declared'] = 'accepted'
except FileOpError as e:
    out['declared'] = e.code
shutil.rmtree(root)
print(json.dumps(out))
`);
    expect(r).toMatchObject({ active: true, room: 124, reserve: 32, second: 'NO_SPACE', leftovers: [], declared: 'NO_SPACE' });
    expect(String(r['message'])).toMatch(/room for 60 more MiB in \/mnt\/data: its files live in memory/);
  });

  it('reads cgroup v1 as well as v2, and leaves disk-backed data directories and unlimited cgroups alone', () => {
    const r = python(`${PRELUDE}
disk = tempfile.mkdtemp(dir='/var/tmp')
shm = tempfile.mkdtemp(dir='/dev/shm')
out = {
    'disk': MemoryRoom(disk, cgroup=fake_cgroup(str(256 * MIB), 250 * MIB)).room(),
    'unlimited': MemoryRoom(shm, cgroup=fake_cgroup('max', 250 * MIB)).room(),
    'noCgroup': MemoryRoom(shm, cgroup='/nonexistent').room(),
    'v1Unlimited': MemoryRoom(shm, cgroup=fake_cgroup('max', 250 * MIB, v1=True)).room(),
    'v1Limited': MemoryRoom(shm, cgroup=fake_cgroup(str(256 * MIB), 100 * MIB, v1=True)).room() // MIB,
}
shutil.rmtree(disk); shutil.rmtree(shm)
print(json.dumps(out))
`);
    expect(r).toEqual({ disk: null, unlimited: null, noCgroup: null, v1Unlimited: null, v1Limited: 124 });
  });
});

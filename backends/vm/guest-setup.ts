/**
 * Hidden Python cells the VM backend runs in the guest right after a session starts, before any
 * session code: per-session state a shared warm snapshot cannot carry.
 */

import { InvalidOptionsError } from '../../src/errors.js';

// Clones of one snapshot share the Python PRNG state captured in it; the guest kernel's RNG is
// reseeded through vmgenid, so reseed the interpreter's generators from it right after a restore.
export const RESEED_CODE =
  "import sys as _s, random as _r\n_r.seed()\nif 'numpy' in _s.modules: _s.modules['numpy'].random.seed()\ndel _s, _r\n";

/**
 * The hidden cell that applies `limits.pids` inside the guest. The warm snapshot is shared by pools
 * with different limits, so this runs per session after every restore (and after a cold boot).
 * RLIMIT_NPROC counts every task of the session's uid; in the guest that uid is this session only
 * (agent, kernels, their children), so it is a per-session process cap like the container's pids
 * cgroup. It goes on every live process of the uid (the agent, so future kernels and shells inherit
 * it, and the running kernels); an unprivileged process may lower, never raise, a hard limit.
 */
export function pidsLimitCode(pids: number): string {
  // Interpolated into code: only a validated integer may get there.
  if (!Number.isInteger(pids) || pids < 1)
    throw new InvalidOptionsError(`limits.pids must be a positive integer (got ${String(pids)})`);
  return [
    'import os as _o, resource as _rs',
    `_n = ${pids}`,
    '_u = _o.getuid()',
    "for _p in _o.listdir('/proc'):",
    '    if not _p.isdigit(): continue',
    '    try:',
    "        if _o.stat('/proc/' + _p).st_uid != _u: continue",
    '        _rs.prlimit(int(_p), _rs.RLIMIT_NPROC, (_n, _n))',
    '    except (ProcessLookupError, FileNotFoundError):',
    '        pass',
    '_rs.setrlimit(_rs.RLIMIT_NPROC, (_n, _n))',
    'assert _rs.getrlimit(_rs.RLIMIT_NPROC) == (_n, _n) and _rs.prlimit(_o.getppid(), _rs.RLIMIT_NPROC) == (_n, _n)',
    'del _o, _rs, _n, _u, _p',
    '',
  ].join('\n');
}

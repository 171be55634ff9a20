"""How much the data directory may still take when its files live in memory.

In a container session /mnt/data is a tmpfs, and tmpfs pages are charged to the session's memory
cgroup: a file uploaded there takes memory the kernel (Python, numpy, the code's data) needs, and
without swap nothing can push it out. Two uploads that each fit the file-size and disk limits could
leave the kernel to be OOM-killed at the next execution, taking the session's files and state with
it. So, when the data directory is a tmpfs and the cgroup has a memory limit, an upload may take
only what memory leaves above a reserve; the chunk that would pass that is never written, the
upload is refused with NO_SPACE and its temp file removed. On disk-backed data directories (the VM
backend's ext4, a developer's machine) there is nothing to check: ENOSPC says it.
"""

import os

CGROUP = "/sys/fs/cgroup"
MIB = 1 << 20
# Kept free for the session's own code after an upload: a tenth of the limit, at least 32 MiB.
MIN_RESERVE = 32 * MIB
RESERVE_FRACTION = 0.1


def _read_int(path):
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max": no limit


def _filesystem_of(path):
    """Filesystem type of the mount holding `path` (the longest mount point that prefixes it)."""
    best, kind = "", None
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 3:
                    continue
                mount = fields[1].replace("\\040", " ")
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                    best, kind = mount, fields[2]
    except OSError:
        return None
    return kind


def _cgroup_files(cgroup):
    """(limit, usage file) of the memory cgroup: v2 (memory.max) or v1 (memory/memory.limit_in_bytes)."""
    limit = _read_int(os.path.join(cgroup, "memory.max"))
    if limit is not None or os.path.exists(os.path.join(cgroup, "memory.max")):
        return limit, os.path.join(cgroup, "memory.current")
    v1 = os.path.join(cgroup, "memory")
    limit = _read_int(os.path.join(v1, "memory.limit_in_bytes"))
    if limit is not None and limit >= 1 << 62:
        limit = None  # v1 spells "no limit" as a huge number
    return limit, os.path.join(v1, "memory.usage_in_bytes")


class MemoryRoom:
    def __init__(self, data_root, cgroup=CGROUP):
        self.limit, self.current_path = _cgroup_files(cgroup)
        self.active = self.limit is not None and _filesystem_of(data_root) == "tmpfs"
        self.reserve = max(MIN_RESERVE, int((self.limit or 0) * RESERVE_FRACTION))

    def room(self):
        """Bytes the data directory may still take, or None when memory does not bound it."""
        if not self.active:
            return None
        current = _read_int(self.current_path)
        if current is None:
            return None
        return max(0, self.limit - current - self.reserve)

    def refusal(self, wanted):
        """A message when `wanted` more bytes would not fit, else None."""
        room = self.room()
        if room is None or wanted <= room:
            return None
        return (
            "the session has room for %d more MiB in /mnt/data: its files live in memory, which they share "
            "with the running code (limit %d MiB, %d MiB kept free); delete files or use a pool with more memory"
            % (room // MIB, self.limit // MIB, self.reserve // MIB)
        )

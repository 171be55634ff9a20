"""Moving a freshly forked process into a running container's sandbox, the way `runc exec` does,
but without exec'ing anything: the process keeps the memory it was forked with (the zygote's
imported libraries). Used only by zygote.py, as root, on the host.

What a container process is confined by, and where each comes from here. Everything is read from
the container's own first process (`target`), never taken from the caller, and the result is
checked against it before any session code can run:

- namespaces (mount, pid, network, IPC, UTS, cgroup): setns into the target's; the user namespace
  must be the same as ours (no user namespace), else entering is refused;
- cgroups: every hierarchy the target belongs to (memory, pids, cpu, devices, ... on cgroup v1;
  the unified tree on v2), joined before the namespaces;
- root and working directory: the target's;
- resource limits (nofile, nproc, ...): the target's;
- uid, gid and supplementary groups: the target's;
- capabilities: the bounding set cut to the target's, and the target must hold none (effective,
  permitted, inheritable, ambient), so after setresuid we hold none either;
- no_new_privs, and the seccomp filters: copied instruction by instruction from the target with
  PTRACE_SECCOMP_GET_FILTER and installed in the same order;
- an LSM label (AppArmor, SELinux): not replicated, so a target that has one is refused.
"""

import ctypes
import os
import resource

libc = ctypes.CDLL(None, use_errno=True)

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

PR_SET_DUMPABLE = 4
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_MODE_FILTER = 2

PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
WALL = 0x40000000
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# Joined in this order; the mount namespace last (it changes what paths mean).
NAMESPACES = (("cgroup", CLONE_NEWCGROUP), ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("net", CLONE_NEWNET),
              ("pid", CLONE_NEWPID), ("mnt", CLONE_NEWNS))


class ConfineError(Exception):
    pass


def _check(result, what):
    if result < 0:
        errno = ctypes.get_errno()
        raise ConfineError("%s failed: %s" % (what, os.strerror(errno)))
    return result


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
libc.ptrace.restype = ctypes.c_long
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
libc.capset.argtypes = [ctypes.POINTER(CapHeader), ctypes.POINTER(CapData)]
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _status(proc_fd, pid):
    """The fields of /proc/<pid>/status we mirror."""
    fields = {}
    with open(os.open("%d/status" % pid, os.O_RDONLY, dir_fd=proc_fd), "r") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def _read(proc_fd, path):
    with open(os.open(path, os.O_RDONLY, dir_fd=proc_fd), "rb") as handle:
        return handle.read()


def rlimits(text):
    """/proc/<pid>/limits as [(resource, (soft, hard))]: the kernel prints one line per resource,
    in resource-number order (prlimit on another process needs CAP_SYS_RESOURCE; this does not)."""
    limits = []
    for number, line in enumerate(text.decode().splitlines()[1:]):
        fields = line[26:].split()
        soft, hard = (resource.RLIM_INFINITY if v == "unlimited" else int(v) for v in fields[:2])
        limits.append((number, (soft, hard)))
    return limits


def seccomp_filters(pid):
    """The target's seccomp filters, oldest first, each as packed `struct sock_filter` bytes. The
    target is stopped for the moment it takes (ptrace), then resumed."""
    _check(libc.ptrace(PTRACE_SEIZE, pid, None, None), "ptrace(SEIZE) of the container's init")
    try:
        _check(libc.ptrace(PTRACE_INTERRUPT, pid, None, None), "ptrace(INTERRUPT)")
        os.waitpid(pid, WALL)
        filters = []
        index = 0
        while True:
            count = libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, ctypes.c_void_p(index), None)
            if count < 0:
                if ctypes.get_errno() == 2:  # ENOENT: no filter at this index
                    break
                _check(count, "ptrace(SECCOMP_GET_FILTER)")
            buffer = ctypes.create_string_buffer(8 * count)
            _check(libc.ptrace(PTRACE_SECCOMP_GET_FILTER, pid, ctypes.c_void_p(index), buffer), "ptrace(SECCOMP_GET_FILTER)")
            filters.append(buffer.raw)
            index += 1
        return list(reversed(filters))  # index 0 is the newest
    finally:
        libc.ptrace(PTRACE_DETACH, pid, None, None)


def _cgroup_mounts(proc_fd):
    """Host cgroup mounts as (controllers or "" for cgroup2, mount point), from init's view
    (/proc/1/mountinfo): a chrooted process does not see mounts outside its root in its own."""
    mounts = []
    for line in _read(proc_fd, "1/mountinfo").decode("utf-8", "replace").splitlines():
        left, _, right = line.partition(" - ")
        parts, rest = left.split(), right.split()
        if len(parts) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append((None if rest[0] == "cgroup2" else set(rest[2].split(",")), parts[4]))
    return mounts


def _cgroup_mount(mounts, controllers):
    """The mount point of the hierarchy holding `controllers` (empty: the unified cgroup2 tree)."""
    wanted = set(c for c in controllers.split(",") if c)
    for options, mount in mounts:
        if (options is None and not wanted) or (options is not None and wanted and wanted <= options):
            if not (mount + "/").startswith("/sys/fs/cgroup/"):
                raise ConfineError("cgroup hierarchy %r is mounted outside /sys/fs/cgroup" % controllers)
            return mount
    raise ConfineError("no mount of the cgroup hierarchy %r" % controllers)


def await_exec(proc_fd, pid, cmdline, container_id, timeout_s=10.0):
    """Wait until the container's first process runs `cmdline`. Before that it is the runtime's own
    init, whose credentials, environment and (not yet installed) seccomp filters are not the
    container's: reading them then would confine the agent less than the container."""
    import time

    want = b"\0".join(a.encode() for a in cmdline) + b"\0"
    # The pid must still be the container's (not a recycled pid): its cgroups name the container.
    if len(container_id) < 12 or container_id.encode() not in _read(proc_fd, "%d/cgroup" % pid):
        raise ConfineError("process %d is not in the container's cgroups" % pid)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if _read(proc_fd, "%d/cmdline" % pid) == want:
                return
        except OSError as error:
            raise ConfineError("the container's first process is gone: %s" % error) from error
        if time.monotonic() > deadline:
            raise ConfineError("the container's first process did not start %r in time" % (cmdline,))
        time.sleep(0.002)


class Target:
    """Everything needed to enter one container, read from its first process before forking."""

    def __init__(self, proc_fd, cgroup_root, pid, cmdline, container_id):
        self.pid = pid
        await_exec(proc_fd, pid, cmdline, container_id)
        status = _status(proc_fd, pid)
        for field in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            if int(status.get(field, "1"), 16) != 0:
                raise ConfineError("the container's init holds capabilities (%s): not entered" % field)
        self.bounding = int(status["CapBnd"], 16)
        self.uid = tuple(int(v) for v in status["Uid"].split()[:3])
        self.gid = tuple(int(v) for v in status["Gid"].split()[:3])
        self.groups = [int(v) for v in status.get("Groups", "").split()]
        self.umask = int(status.get("Umask", "0022"), 8)
        if self.uid[0] == 0 or self.gid[0] == 0:
            raise ConfineError("the container runs as root: not entered")
        try:
            label = _read(proc_fd, "%d/attr/current" % pid).strip(b"\0\n ")
        except OSError:
            label = b""
        if label not in (b"", b"unconfined"):
            raise ConfineError("the container has an LSM label (%r) that cannot be replicated" % label[:64])
        own = {}
        self.namespaces = []
        for name, flag in NAMESPACES + (("user", 0),):
            theirs = os.stat("%d/ns/%s" % (pid, name), dir_fd=proc_fd).st_ino
            own[name] = os.stat("self/ns/%s" % name, dir_fd=proc_fd).st_ino
            if name == "user":
                if theirs != own[name]:
                    raise ConfineError("the container has its own user namespace: not entered")
            elif theirs != own[name]:
                self.namespaces.append((os.open("%d/ns/%s" % (pid, name), os.O_RDONLY, dir_fd=proc_fd), flag))
        self.root_fd = os.open("%d/root" % pid, os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc_fd)
        self.cwd_fd = os.open("%d/cwd" % pid, os.O_RDONLY | os.O_DIRECTORY, dir_fd=proc_fd)
        self.environ = {}
        for item in _read(proc_fd, "%d/environ" % pid).split(b"\0"):
            key, sep, value = item.partition(b"=")
            if sep:
                self.environ[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        self.limits_text = _read(proc_fd, "%d/limits" % pid)
        self.rlimits = rlimits(self.limits_text)
        self.cap_last = int(_read(proc_fd, "sys/kernel/cap_last_cap").strip())
        mounts = _cgroup_mounts(proc_fd)
        self.cgroup_root = cgroup_root
        self.cgroups = []
        for line in _read(proc_fd, "%d/cgroup" % pid).decode().splitlines():
            _, controllers, path = line.split(":", 2)
            mount = _cgroup_mount(mounts, controllers)
            self.cgroups.append(os.path.relpath(mount, "/sys/fs/cgroup") + path)
        self.filters = seccomp_filters(pid)
        self.no_new_privs = status.get("NoNewPrivs") == "1"

    def close(self):
        for fd, _ in self.namespaces:
            os.close(fd)
        os.close(self.root_fd)
        os.close(self.cwd_fd)

    def join_cgroups(self):
        """Move this process into every cgroup of the target (children are born in them)."""
        me = str(os.getpid()).encode()
        for path in self.cgroups:
            fd = os.open(path.lstrip("/") + "/cgroup.procs", os.O_WRONLY, dir_fd=self.cgroup_root)
            try:
                os.write(fd, me)
            finally:
                os.close(fd)

    def join_namespaces(self):
        """setns into the target's namespaces; the pid namespace takes effect for our children."""
        for fd, flag in self.namespaces:
            _check(libc.setns(fd, flag), "setns")

    def drop_privileges(self):
        """In the child that becomes the container process: root, cwd, limits, identity,
        capabilities, no_new_privs, seccomp. Nothing may run between this and the caller's code."""
        os.fchdir(self.root_fd)
        os.chroot(".")
        os.fchdir(self.cwd_fd)
        for which, limits in self.rlimits:
            try:
                resource.setrlimit(which, limits)
            except (ValueError, OSError) as error:  # above our own hard limit: cannot match
                raise ConfineError("cannot apply the container's limit %d %s: %s" % (which, limits, error)) from error
        os.umask(self.umask)
        for cap in range(self.cap_last + 1):
            if not self.bounding & (1 << cap):
                _check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping capability %d" % cap)
        _check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")
        os.setgroups(self.groups)
        os.setresgid(*self.gid)
        os.setresuid(*self.uid)  # clears permitted and effective capabilities
        header = CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
        data = (CapData * 2)()
        _check(libc.capset(ctypes.byref(header), data), "clearing inheritable capabilities")
        # As after an execve: the process's /proc files belong to it, not to root.
        _check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "prctl(SET_DUMPABLE)")
        _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(SET_NO_NEW_PRIVS)")
        for program in self.filters:
            buffer = ctypes.create_string_buffer(program, len(program))
            fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
            _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0), "installing seccomp")
        self.verify()

    def verify(self):
        """What /proc says about us now must match the target; else die before anything runs."""
        status = {}
        with open("/proc/self/status") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                status[key] = value.strip()
        problems = []
        for field in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            if int(status[field], 16) != 0:
                problems.append(field)
        if int(status["CapBnd"], 16) != self.bounding:
            problems.append("CapBnd")
        if tuple(int(v) for v in status["Uid"].split()[:3]) != self.uid:
            problems.append("Uid")
        if tuple(int(v) for v in status["Gid"].split()[:3]) != self.gid:
            problems.append("Gid")
        if int(status.get("Seccomp_filters", "0")) < len(self.filters) or (self.filters and status.get("Seccomp") != "2"):
            problems.append("Seccomp")
        if status.get("NoNewPrivs") != "1" and self.no_new_privs:
            problems.append("NoNewPrivs")
        with open("/proc/self/limits", "rb") as handle:
            if handle.read() != self.limits_text:
                problems.append("limits")
        if problems:
            raise ConfineError("confinement does not match the container's (%s)" % ", ".join(problems))

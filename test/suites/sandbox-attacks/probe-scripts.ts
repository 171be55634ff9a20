/**
 * Python probes for the out-of-process attack suite. Each probe is written to run many checks in
 * ONE execution and print one JSON object on its last stdout line, because a VM under TCG makes
 * every execution expensive. Every check catches its own exception and reports the error class and
 * errno, so one refused attack never hides the outcome of the next.
 */

/** Inputs the probes need from the host side of the test. */
export interface HostFacts {
  /** A file that exists on the host only (a fresh temporary directory of the test). */
  readonly hostCanaryFile: string;
  /** A path inside this repository on the host. */
  readonly repoFile: string;
  /** A random string in the environment and command line of a host process the test started. */
  readonly canary: string;
  /** Host pid of that process (it must be neither visible nor traceable from the sandbox). */
  readonly canaryPid: number;
  /** Host TCP endpoints that must be unreachable: [label, address, port]. */
  readonly targets: readonly (readonly [string, string, number])[];
}

const PRELUDE = `
import json, os, socket, ctypes, ctypes.util, errno as _errno, hashlib, stat
R = {}
def err(e):
    return type(e).__name__ + (':' + _errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else '')
def check(name, fn):
    try:
        R[name] = fn()
    except BaseException as e:
        R[name] = 'ERR ' + err(e)
libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
def libc_call(fn, *args):
    r = fn(*args)
    return 'ok' if r >= 0 else 'ERR ' + _errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
def read_hash(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()
`;

/** Host files, /proc and mountinfo, privileged operations and devices. */
export function hostReachProbe(facts: HostFacts): string {
  return (
    PRELUDE +
    String.raw`
CANARY = ${JSON.stringify(facts.canary)}
check('hostCanaryExists', lambda: os.path.exists(${JSON.stringify(facts.hostCanaryFile)}))
check('repoFileExists', lambda: os.path.exists(${JSON.stringify(facts.repoFile)}))
check('shadowHash', lambda: read_hash('/etc/shadow'))
check('pid1Cmdline', lambda: open('/proc/1/cmdline', 'rb').read().replace(b'\0', b' ').decode(errors='replace').strip())
check('pid1Environ', lambda: 'readable' if open('/proc/1/environ', 'rb').read() is not None else '')
def scan_proc():
    pids = [p for p in os.listdir('/proc') if p.isdigit()]
    hits = []
    for p in pids:
        for leaf in ('cmdline', 'environ'):
            try:
                if CANARY.encode() in open('/proc/%s/%s' % (p, leaf), 'rb').read():
                    hits.append(p + '/' + leaf)
            except OSError:
                pass
    return {'count': len(pids), 'canaryHits': hits}
check('proc', scan_proc)
check('mountinfo', lambda: open('/proc/self/mountinfo').read())
check('mount', lambda: libc_call(libc.mount, b'none', b'/tmp', b'tmpfs', ctypes.c_ulong(0), None))
check('umountRoot', lambda: libc_call(libc.umount2, b'/', 2))
check('ptraceHostPid', lambda: libc_call(libc.ptrace, ctypes.c_long(16), ctypes.c_long(${facts.canaryPid}), None, None))
check('killHostPid', lambda: os.kill(${facts.canaryPid}, 0) or 'signalled')
check('unshareUserNs', lambda: libc_call(libc.unshare, 0x10000000))
check('unshareMountNs', lambda: libc_call(libc.unshare, 0x00020000))
check('rawIcmp', lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close() or 'opened')
check('packetSocket', lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close() or 'opened')
def load_module():
    fd = os.open('/dev/null', os.O_RDONLY)
    try:
        return libc_call(libc.syscall, ctypes.c_long(313), ctypes.c_int(fd), b'', ctypes.c_int(0))
    finally:
        os.close(fd)
check('finitModule', load_module)
check('initModule', lambda: libc_call(libc.syscall, ctypes.c_long(175), ctypes.create_string_buffer(64), ctypes.c_ulong(64), b''))
check('kexecLoad', lambda: libc_call(libc.syscall, ctypes.c_long(246), ctypes.c_ulong(0), ctypes.c_ulong(0), None, ctypes.c_ulong(0)))
def devices():
    out = {}
    for root, dirs, files in os.walk('/dev'):
        for n in dirs + files:
            p = os.path.join(root, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode):
                out[p] = ('b' if stat.S_ISBLK(st.st_mode) else 'c') + '%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    return out
check('devices', devices)
for name in ('/dev/mem', '/dev/kmem', '/dev/port', '/dev/kmsg', '/dev/sda', '/dev/vda', '/dev/nvme0n1', '/dev/kvm', '/dev/fuse'):
    check('open ' + name, lambda name=name: os.close(os.open(name, os.O_RDONLY)) or 'opened')
check('mknodBlock', lambda: os.mknod('/tmp/sandpool-blk', 0o600 | stat.S_IFBLK, os.makedev(8, 0)) or 'created')
check('sysrq', lambda: open('/proc/sysrq-trigger', 'w').write('h') and 'written')
check('coreStorePattern', lambda: open('/proc/sys/kernel/core_pattern', 'w').write('|/tmp/x') and 'written')
for sock in ('/run/podman/podman.sock', '/run/sandpool-docker/docker.sock', '/var/run/docker.sock', '/run/docker.sock', '/run/containerd/containerd.sock'):
    check('engine ' + sock, lambda sock=sock: os.path.exists(sock))
check('uid', lambda: os.getuid())
check('seccomp', lambda: [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0])
print(json.dumps(R))
`
  );
}

/**
 * New namespaces and kernel-facing socket families, each tried from a forked, single-threaded child
 * (the kernel answers EINVAL to unshare(CLONE_NEWUSER) from a multi-threaded process such as the
 * Python kernel, which proves nothing), plus the attack an outside review used: `unshare -rn` from
 * a subprocess. Positive controls (TCP, UDP, UNIX, NETLINK_ROUTE, threads, fork, subprocess, Node.js
 * worker threads) show the profile does not break ordinary code.
 */
export function namespaceProbe(): string {
  return (
    PRELUDE +
    String.raw`
import subprocess, threading
libc.syscall.restype = ctypes.c_long
def in_child(fn):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            out = str(fn())
        except BaseException as e:
            out = 'ERR ' + err(e)
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    os.waitpid(pid, 0)
    return b''.join(chunks).decode()
def raw_syscall(nr, *args):
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    if r < 0:
        return 'ERR ' + _errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
    if r == 0 and nr == 56:
        os._exit(0)  # the clone child, if one was ever made
    return 'ok'
def single_threaded():
    return len(os.listdir('/proc/self/task'))
def open_socket(family, kind, proto=0):
    socket.socket(family, kind, proto).close()
    return 'opened'
def setns_net():
    fd = os.open('/proc/self/ns/net', os.O_RDONLY)
    try:
        return raw_syscall(308, fd, 0)
    finally:
        os.close(fd)
NEWUSER, NEWNS, NEWNET, NEWPID, NEWIPC, NEWUTS, NEWCGROUP = 0x10000000, 0x20000, 0x40000000, 0x20000000, 0x08000000, 0x04000000, 0x02000000
R['childThreads'] = in_child(single_threaded)
for name, flag in (('User', NEWUSER), ('Mount', NEWNS), ('Net', NEWNET), ('Pid', NEWPID), ('Ipc', NEWIPC), ('Uts', NEWUTS), ('Cgroup', NEWCGROUP)):
    R['unshare' + name] = in_child(lambda flag=flag: raw_syscall(272, flag))
    R['clone' + name] = in_child(lambda flag=flag: raw_syscall(56, flag | 17, 0, 0, 0, 0))
R['unshareUserNet'] = in_child(lambda: raw_syscall(272, NEWUSER | NEWNET))
R['clone3'] = in_child(lambda: raw_syscall(435, 0, 0))
R['setns'] = in_child(setns_net)
R['rawIcmp'] = in_child(lambda: open_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
R['rawIcmp6'] = in_child(lambda: open_socket(socket.AF_INET6, socket.SOCK_RAW, 58))
R['rawTcp'] = in_child(lambda: open_socket(socket.AF_INET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.IPPROTO_TCP))
R['packetRaw'] = in_child(lambda: open_socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
R['packetDgram'] = in_child(lambda: open_socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0))
for name, proto in (('Netfilter', 12), ('Generic', 16), ('Audit', 9), ('Uevent', 15), ('Xfrm', 6), ('SockDiag', 4)):
    R['netlink' + name] = in_child(lambda proto=proto: open_socket(socket.AF_NETLINK, socket.SOCK_RAW, proto))
for name, family, kind in (('Alg', 38, socket.SOCK_SEQPACKET), ('Vsock', 40, socket.SOCK_STREAM), ('Key', 15, socket.SOCK_RAW),
                           ('Xdp', 44, socket.SOCK_RAW), ('Bluetooth', 31, socket.SOCK_STREAM), ('Can', 29, socket.SOCK_RAW),
                           ('Tipc', 30, socket.SOCK_RDM), ('Rds', 21, socket.SOCK_SEQPACKET), ('Llc', 26, socket.SOCK_DGRAM)):
    R['family' + name] = in_child(lambda family=family, kind=kind: open_socket(family, kind))
R['sctp'] = in_child(lambda: open_socket(socket.AF_INET, socket.SOCK_SEQPACKET, 132))
def unshare_cli(*args):
    p = subprocess.run(['unshare', *args, 'sh', '-c', 'echo inside'], capture_output=True, text=True, timeout=20)
    return {'code': p.returncode, 'stdout': p.stdout.strip(), 'stderr': p.stderr.strip()}
R['cliUnshareRn'] = unshare_cli('-rn')
R['cliUnshareUser'] = unshare_cli('-U')
R['cliUnshareMapRootNet'] = unshare_cli('--map-root-user', '--net', '--mount')
# Positive controls: ordinary code keeps working under the profile.
R['tcp'] = in_child(lambda: open_socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK))
R['udp6'] = in_child(lambda: open_socket(socket.AF_INET6, socket.SOCK_DGRAM))
R['unix'] = in_child(lambda: open_socket(socket.AF_UNIX, socket.SOCK_SEQPACKET))
R['netlinkRoute'] = in_child(lambda: open_socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
R['ifNames'] = [n for _, n in socket.if_nameindex()]
R['getaddrinfo'] = sorted({a[4][0] for a in socket.getaddrinfo('127.0.0.1', 80, proto=socket.IPPROTO_TCP, flags=socket.AI_ADDRCONFIG)})
box = []
t = threading.Thread(target=lambda: box.append('thread ran'))
t.start(); t.join()
R['thread'] = box[0] if box else 'no thread'
R['fork'] = in_child(lambda: 'forked')
R['subprocess'] = subprocess.run(['sh', '-c', 'echo sub'], capture_output=True, text=True).stdout.strip()
with open('/tmp/worker-probe.js', 'w') as f:
    f.write("const {Worker} = require('worker_threads'); new Worker('/tmp/worker-child.js').on('message', (m) => console.log(m))")
with open('/tmp/worker-child.js', 'w') as f:
    f.write("require('worker_threads').parentPort.postMessage(6 * 7)")
R['nodeWorker'] = subprocess.run(['node', '/tmp/worker-probe.js'], capture_output=True, text=True, timeout=60).stdout.strip()
print(json.dumps(R))
`
  );
}

/** TCP connects to host endpoints (and the metadata address), each with a short timeout. */
export function networkProbe(facts: HostFacts): string {
  return (
    PRELUDE +
    String.raw`
def connect(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        s.sendall(b'GET / HTTP/1.0\r\n\r\n')
        return 'connected ' + s.recv(64).decode(errors='replace')
    finally:
        s.close()
for label, host, port in ${JSON.stringify(facts.targets)}:
    check(label, lambda host=host, port=port: connect(host, port))
check('interfaces', lambda: sorted(n for _, n in socket.if_nameindex()))
print(json.dumps(R))
`
  );
}

/** Parse the JSON object a probe printed as its last stdout line. */
export function probeResult(stdout: string): Record<string, unknown> {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as Record<string, unknown>;
}

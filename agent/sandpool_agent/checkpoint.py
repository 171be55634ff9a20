"""Interpreter-level checkpoints (agent/PROTOCOL.md, `checkpoint` and `restore`).

The state travels as raw bytes over a unix socket the host listens on (a JSON/base64 frame stream
would cost seconds for a 100 MB DataFrame), in this agent-defined format the host stores verbatim:

    b"SPCK\\x01" then records: 1 byte type + 4 bytes big-endian length + payload
      P  start of a part; payload = its name (files | python | javascript)
      D  data of the current part
      Z  end of the checkpoint (empty payload); a stream without it is truncated

Parts: `files` holds /mnt/data (entries: 4-byte header length, JSON header, then the content);
`python` and `javascript` hold what each kernel's session_state module wrote into a FIFO that this
module relays. Restore feeds the parts back the same way, files first, into a fresh session.
"""

import fcntl
import json
import os
import select
import socket
import stat as stat_mod
import struct
import tempfile

from files import TEMP_PREFIX, FileOpError, split_path
from kernel_process import KernelStartError, SessionOpError

MAGIC = b"SPCK\x01"
RECORD = struct.Struct(">cI")
ENTRY = struct.Struct(">I")
CHUNK = 1 << 20
MAX_ENTRY_HEADER = 64 << 10
PART_NAMES = ("files", "python", "javascript")


class CheckpointError(Exception):
    pass


def _lost(language, name, kind, reason):
    return {"language": language, "name": str(name)[:200], "type": kind, "reason": reason}


class RecordWriter:
    def __init__(self, sock):
        self.sock = sock
        self.bytes = 0
        self._send(MAGIC)

    def _send(self, data):
        self.sock.sendall(data)
        self.bytes += len(data)

    def record(self, kind, payload=b""):
        self._send(RECORD.pack(kind, len(payload)))
        if payload:
            self._send(payload)

    def data(self, payload):
        for start in range(0, len(payload), CHUNK):
            self.record(b"D", payload[start : start + CHUNK])


class RecordReader:
    def __init__(self, sock):
        self.sock = sock
        self.peeked = None
        if self._exact(len(MAGIC)) != MAGIC:
            raise CheckpointError("not a sandpool checkpoint (bad header)")

    def _exact(self, size):
        buf = bytearray(size)
        view = memoryview(buf)
        got = 0
        while got < size:
            n = self.sock.recv_into(view[got:])
            if n == 0:
                raise CheckpointError("the checkpoint is truncated")
            got += n
        return bytes(buf)

    def next(self):
        if self.peeked is not None:
            record, self.peeked = self.peeked, None
            return record
        kind, size = RECORD.unpack(self._exact(RECORD.size))
        if kind not in (b"P", b"D", b"Z") or size > 64 << 20:
            raise CheckpointError("the checkpoint is corrupt (record %r of %d bytes)" % (kind, size))
        return kind, self._exact(size) if size else b""

    def part_chunks(self):
        """The data records of the current part; stops before the next part or the end."""
        while True:
            record = self.next()
            if record[0] != b"D":
                self.peeked = record
                return
            yield record[1]


class PartStream:
    """`read(n)` over a part's data records, for the files part's entry format."""

    def __init__(self, chunks):
        self.chunks = chunks
        self.buf = bytearray()

    def read(self, size):
        while len(self.buf) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buf += chunk
        out, self.buf = bytes(self.buf[:size]), self.buf[size:]
        return out


# ---- files under the data dir ----


def dump_files(data_dir, out, lost):
    """Every regular file and directory under the data dir, walked without following symlinks."""
    count = 0
    for top, dirs, files, dir_fd in os.fwalk(data_dir.root, follow_symlinks=False):
        rel = os.path.relpath(top, data_dir.root)
        prefix = "" if rel == "." else rel + "/"
        for name in sorted(dirs + files):
            if name.startswith(TEMP_PREFIX):
                continue
            path = prefix + name
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except OSError:
                continue  # vanished meanwhile
            if stat_mod.S_ISDIR(st.st_mode):
                header = json.dumps({"path": path, "type": "directory", "mode": st.st_mode & 0o777}).encode()
                out.data(ENTRY.pack(len(header)) + header)
                count += 1
                continue
            if not stat_mod.S_ISREG(st.st_mode):
                lost.append(_lost("files", path, "special file", "symbolic links, FIFOs and sockets are not kept"))
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
            except OSError as error:
                lost.append(_lost("files", path, "file", "unreadable: %s" % error.strerror))
                continue
            try:
                size = os.fstat(fd).st_size
                header = json.dumps({"path": path, "type": "file", "mode": st.st_mode & 0o777, "size": size,
                                     "mtime": st.st_mtime}).encode()
                out.data(ENTRY.pack(len(header)) + header)
                left = size
                while left > 0:
                    block = os.read(fd, min(CHUNK, left))
                    if not block:
                        block = b"\0" * min(CHUNK, left)  # shrank while being read: keep the size promised
                    out.data(block)
                    left -= len(block)
            finally:
                os.close(fd)
            count += 1
    return count


def load_files(data_dir, stream):
    count = 0
    while True:
        raw = stream.read(ENTRY.size)
        if not raw:
            return count
        (size,) = ENTRY.unpack(raw)
        if size > MAX_ENTRY_HEADER:
            raise CheckpointError("the checkpoint's file list is corrupt")
        header = json.loads(stream.read(size))
        parts = split_path(header["path"])
        if header["type"] == "directory":
            os.close(data_dir._open_dir(parts, create=True))
        else:
            upload = data_dir.begin_upload(header["path"], 1 << 62)
            left = int(header["size"])
            while left > 0:
                block = stream.read(min(CHUNK, left))
                if not block:
                    upload.abort()
                    raise CheckpointError("the checkpoint is truncated inside %s" % header["path"])
                upload.write(block)
                left -= len(block)
            upload.finish(mtime=header.get("mtime"), mode=header.get("mode"))
        count += 1


# ---- kernel parts, relayed through a FIFO ----


# A FIFO holds 64 KiB by default: a 100 MB state would cost the kernel and the relay thousands of
# wake-ups each. 1 MiB is the kernel's default ceiling for an unprivileged process.
PIPE_SIZE = 1 << 20


def widen_pipe(fd):
    try:
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except (OSError, AttributeError):
        pass  # a lower pipe-max-size: the default size only costs speed


class Fifo:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sandpool-ckpt-")
        self.path = os.path.join(self.dir, "state")
        os.mkfifo(self.path, 0o600)

    def remove(self):
        for path, remove in ((self.path, os.unlink), (self.dir, os.rmdir)):
            try:
                remove(path)
            except OSError:
                pass


class _FifoToHost:
    """Kernel → host, served by the waiting request's own thread (Incarnation.read_message): the
    FIFO is opened read-write, so there is no EOF to race with, and drained once the kernel answered.
    A host that stops taking the state fails the checkpoint; the FIFO is still drained (and dropped),
    so the kernel finishes and answers."""

    events = select.POLLIN
    retry = False

    def __init__(self, fd, out):
        self.fd, self.out = fd, out
        self.failure = None

    def step(self):
        try:
            block = os.read(self.fd, CHUNK)
        except BlockingIOError:
            return False
        if self.failure is None:
            try:
                self.out.data(block)
            except OSError as error:
                self.failure = error
        return True

    def drain(self):
        while self.step():
            pass


def kernel_checkpoint(kernel, out, timeout_s):
    fifo = Fifo()
    fd = os.open(fifo.path, os.O_RDWR | os.O_NONBLOCK)
    widen_pipe(fd)
    relay = _FifoToHost(fd, out)
    try:
        result = kernel.session_op({"type": "checkpoint", "path": fifo.path}, timeout_s, relay)
        relay.drain()  # the kernel wrote everything before it answered
    finally:
        os.close(fd)
        fifo.remove()
    if relay.failure is not None:
        raise CheckpointError("relaying the kernel's state failed: %s" % relay.failure)
    return result


class _HostToFifo:
    """Host → kernel, served like _FifoToHost: opens the FIFO once the kernel has opened its end
    (ENXIO until then), writes the part's data as the kernel reads it, and closes it after the last
    byte, which is the kernel's end of data. A kernel that stops reading ends the writing."""

    events = select.POLLOUT

    def __init__(self, path, chunks):
        self.path = path
        self.chunks = iter(chunks)
        self.fd = None
        self.retry = True  # until the FIFO is open
        self.view = memoryview(b"")
        self.failure = None  # the host's stream broke: the kernel gets a short part, and says so

    def step(self):
        if self.fd is None:
            try:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                return  # the kernel has not opened it yet
            widen_pipe(self.fd)
            self.retry = False
        try:
            while True:
                if not self.view:
                    try:
                        chunk = next(self.chunks, None)
                    except (CheckpointError, OSError) as error:
                        self.failure, chunk = error, None
                    if chunk is None:
                        self.close()
                        return
                    self.view = memoryview(chunk)
                self.view = self.view[os.write(self.fd, self.view) :]
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the kernel stopped reading; its answer says why
            self.close()

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.retry = False


def kernel_restore(kernel, chunks, fork, timeout_s):
    fifo = Fifo()
    writer = _HostToFifo(fifo.path, chunks)
    try:
        try:
            return kernel.session_op({"type": "restore", "path": fifo.path, "fork": fork}, timeout_s, writer)
        except SessionOpError:
            if writer.failure is not None:
                raise CheckpointError("restoring the checkpoint failed: %s" % writer.failure) from writer.failure
            raise
    finally:
        writer.close()
        for _ in chunks:
            pass  # a failed kernel must not leave the rest of its part in the stream
        fifo.remove()


# ---- the two operations ----


def _extra_processes(executor):
    """Processes of the session's user other than the agent, its init and its kernels: not kept, so named."""
    mine = {1, os.getpid(), os.getppid()} | {k.current.proc.pid for k in executor.kernels.values() if k.current is not None}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in mine:
            continue
        try:
            if os.stat("/proc/" + entry).st_uid != os.getuid():
                continue
            with open("/proc/%s/comm" % entry) as handle:
                name = handle.read().strip()
        except OSError:
            continue
        found.append(_lost("process", "%s (pid %s)" % (name, entry), "process", "processes other than the kernels are not kept"))
    return found


def _connect(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(600)
    sock.connect(path)
    return sock


def _running(kernel):
    return kernel is not None and kernel.current is not None and kernel.current.proc.poll() is None


def checkpoint(agent, socket_path, timeout_s):
    executor = agent.executor
    kernels = [(name, executor.kernels.get(name)) for name in ("python", "javascript")]
    locks = [k.lock for _, k in kernels if k is not None]
    report = {"lost": [], "files": 0, "kernels": {}}
    sock = _connect(socket_path)
    for lock in locks:
        lock.acquire()  # running executions finish first; new ones wait until the state is written
    try:
        out = RecordWriter(sock)
        out.record(b"P", b"files")
        report["files"] = dump_files(agent.data, out, report["lost"])
        for name, kernel in kernels:
            if not _running(kernel):
                continue
            out.record(b"P", name.encode())
            result = kernel_checkpoint(kernel, out, timeout_s)
            report["kernels"][name] = result.get("saved", 0)
            report["lost"] += result.get("lost", [])
        report["lost"] += _extra_processes(executor)
        out.record(b"Z")
        report["bytes"] = out.bytes
    finally:
        for lock in reversed(locks):
            lock.release()
        sock.close()
    return report


def restore(agent, socket_path, fork, timeout_s):
    executor = agent.executor
    report = {"lost": [], "files": 0, "kernels": {}}
    sock = _connect(socket_path)
    try:
        reader = RecordReader(sock)
        while True:
            kind, payload = reader.next()
            if kind == b"Z":
                return report
            name = payload.decode("ascii", "replace")
            if kind != b"P" or name not in PART_NAMES:
                raise CheckpointError("the checkpoint is corrupt (unexpected %r record %r)" % (kind, name[:32]))
            if name == "files":
                report["files"] = load_files(agent.data, PartStream(reader.part_chunks()))
                continue
            kernel = executor.python_kernel() if name == "python" else executor.js_kernel()
            with kernel.lock:
                kernel.ensure_started()
                result = kernel_restore(kernel, reader.part_chunks(), fork, timeout_s)
            report["kernels"][name] = result.get("restored", 0)
            report["lost"] += result.get("lost", [])
    except (CheckpointError, SessionOpError):
        raise
    except (OSError, ValueError, KeyError, TypeError, FileOpError, KernelStartError) as error:
        raise CheckpointError("restoring the checkpoint failed: %s" % getattr(error, "message", error)) from error
    finally:
        sock.close()


def reseed(agent, timeout_s):
    """A copied session (VM fork): every running kernel draws fresh random numbers."""
    for name in ("python", "javascript"):
        kernel = agent.executor.kernels.get(name)
        if _running(kernel):
            with kernel.lock:
                kernel.session_op({"type": "reseed"}, timeout_s)

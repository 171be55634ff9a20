"""One process of a kernel (kernel_process.py): its control channel, read by the waiting request's
own thread, and its stdout and stderr, handed to the agent's pipe pump."""

import collections
import json
import os
import select
import signal
import subprocess
import time

from output_capture import PipeReader

# A legitimate answer holds at most 24 MiB of images and a 1 MiB result (escaped up to 6x).
MAX_CONTROL_LINE = 40 << 20
TIMEOUT = object()


def kill_group(proc):
    """Kill a kernel and whatever session code spawned in its process group, and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Incarnation:
    """One process of a kernel: its control channel and output readers. The control channel is read
    by the waiting execution itself (no thread in between: one scheduling hop less per execution);
    stdout and stderr go to the agent's pipe pump, which owns their fds from here on."""

    def __init__(self, proc, ctl_w, ctl_r, out_r, err_r, pump):
        self.proc = proc
        self.ctl_w = ctl_w
        self.ctl_r = ctl_r
        self.buf = bytearray()
        self.pending = collections.deque()
        self.eof = False
        self.poller = select.poll()
        self.poller.register(ctl_r, select.POLLIN)
        self.sink = None
        self.env_version = 0  # session environment version this process has (0: the one it started with)
        self.readers = [PipeReader("stdout", self), PipeReader("stderr", self)]
        for fd, reader in zip((out_r, err_r), self.readers):
            pump.read(fd, reader.feed)

    def current_sink(self):
        return self.sink

    def read_message(self, timeout, side=None):
        """The next control message; None once the channel ended; TIMEOUT if none came in time.

        `side` (checkpoint.py's FIFO relays) is served meanwhile on this same thread, so a checkpoint
        needs no thread of its own: `side.step()` runs when `side.fd` is ready for `side.events`, or
        every millisecond while `side.fd` is None and `side.retry` is set (a FIFO not open yet)."""
        deadline = time.monotonic() + timeout
        polled = None  # side.fd as registered in the poller
        try:
            while True:
                if self.pending:
                    return self.pending.popleft()
                if self.eof:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return TIMEOUT
                wait_ms = max(1, int(remaining * 1000))
                if side is not None:
                    if side.fd != polled:
                        if polled is not None:
                            self.poller.unregister(polled)
                        polled = side.fd
                        if polled is not None:
                            self.poller.register(polled, side.events)
                    if polled is None and side.retry:
                        wait_ms = 1
                ready = [fd for fd, _ in self.poller.poll(wait_ms)]
                if side is not None and ((polled is not None and polled in ready) or (polled is None and side.retry)):
                    side.step()
                if self.ctl_r in ready:
                    self._read_control()
        finally:
            if polled is not None:
                try:
                    self.poller.unregister(polled)
                except (KeyError, ValueError):
                    pass

    def _read_control(self):
        while True:
            try:
                chunk = os.read(self.ctl_r, 1 << 20)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            break
        if not chunk:
            self._close_control()
            return
        self.buf += chunk
        while True:
            nl = self.buf.find(b"\n")
            if nl < 0:
                break
            line = bytes(self.buf[:nl])
            del self.buf[: nl + 1]
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            self.pending.append(message if isinstance(message, dict) else {"type": "garbage"})
        if len(self.buf) > MAX_CONTROL_LINE:
            self._close_control()  # this much without a newline: a broken kernel, treat as dead

    def _close_control(self):
        if not self.eof:
            self.eof = True
            self.buf = bytearray()
            try:
                self.poller.unregister(self.ctl_r)
            except (KeyError, ValueError):
                pass
            os.close(self.ctl_r)

    def send(self, message):
        data = memoryview((json.dumps(message) + "\n").encode("utf-8", "surrogatepass"))
        while data:
            data = data[os.write(self.ctl_w, data) :]

    def kill(self):
        kill_group(self.proc)
        try:
            os.close(self.ctl_w)
        except OSError:
            pass
        self._close_control()

    def exit_code(self, wait_s):
        try:
            return self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            return None

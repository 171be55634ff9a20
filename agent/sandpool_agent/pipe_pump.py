"""One thread moves every byte between the agent and its children's pipes: the kernels' stdout and
stderr, and a shell command's stdout, stderr and stdin.

A thread per pipe would have to be started with each kernel and each shell command, and the
agent shares its process limit with the session's code (see workers.py): after code has forked
until the limit, a kernel restart or a shell command that got its process could not get its
reader threads, and its output would be lost or the agent stuck. The pump is started before the
session's code runs and serves pipes added at any time. A pipe stays with the pump until its
writers are all gone, even after its execution ended (a background process keeps writing into
it; what it writes then is dropped), so no child ever blocks on a pipe nobody drains.
"""

import os
import select
import threading

from workers import start_once

READ_SIZE = 65536
WRITE_SIZE = 65536
_READ_EVENTS = select.POLLIN | select.POLLHUP | select.POLLERR
_WRITE_EVENTS = select.POLLOUT | select.POLLHUP | select.POLLERR


class _Reader:
    def __init__(self, fd, on_data, on_end):
        self.fd, self.on_data, self.on_end = fd, on_data, on_end


class _Writer:
    def __init__(self, fd, data):
        self.fd, self.view = fd, memoryview(data)


class PipePump:
    def __init__(self, log):
        self.log = log
        self.lock = threading.Lock()
        self.added = []  # pipes handed over since the pump last looked
        self.pipes = {}  # fd -> _Reader | _Writer; the pump thread's own
        self.thread = None
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)

    def start(self):
        """Idempotent. Raises RuntimeError when the thread cannot be started."""
        start_once(self, self.lock, "pipe-pump")

    def read(self, fd, on_data, on_end=None):
        """Hand `fd` (a pipe's read end, now the pump's to close) over: `on_data(bytes)` for each
        chunk, `on_end()` once its writers are gone. Both run on the pump thread and must not block."""
        self._add(_Reader(fd, on_data, on_end))

    def write(self, fd, data):
        """Write `data` into `fd` (a pipe's write end, now the pump's), then close it. A reader that
        goes away first ends the write quietly: the program did not read all of its input."""
        if not data:
            os.close(fd)
            return
        os.set_blocking(fd, False)
        self._add(_Writer(fd, data))

    def _add(self, pipe):
        with self.lock:
            self.added.append(pipe)
        try:
            os.write(self.wake_w, b"\0")
        except BlockingIOError:
            pass  # a wake-up is pending already

    def _run(self):
        poller = select.poll()
        poller.register(self.wake_r, select.POLLIN)
        while True:
            for fd, events in poller.poll():
                if fd == self.wake_r:
                    self._take_added(poller)
                    continue
                pipe = self.pipes.get(fd)
                if pipe is None:
                    continue
                if self._serve(pipe, events):
                    self._close(poller, pipe)

    def _take_added(self, poller):
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self.lock:
            added, self.added = self.added, []
        for pipe in added:
            self.pipes[pipe.fd] = pipe
            poller.register(pipe.fd, _READ_EVENTS if isinstance(pipe, _Reader) else _WRITE_EVENTS)

    def _serve(self, pipe, events):
        """Move one chunk; True when the pipe is finished."""
        if events & select.POLLNVAL:
            return True
        if isinstance(pipe, _Writer):
            try:
                pipe.view = pipe.view[os.write(pipe.fd, pipe.view[:WRITE_SIZE]) :]
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:  # EPIPE: the reader is gone
                return True
            return not pipe.view
        try:
            chunk = os.read(pipe.fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            chunk = b""
        if not chunk:
            return True
        try:
            pipe.on_data(chunk)
        except Exception as error:  # noqa: BLE001 - a bug there must not stop the pump, nor close a kernel's stdout
            self.log("pipe pump: %r" % error)
        return False

    def _close(self, poller, pipe):
        del self.pipes[pipe.fd]
        try:
            poller.unregister(pipe.fd)
        except (KeyError, ValueError):
            pass
        try:
            os.close(pipe.fd)
        except OSError:
            pass
        on_end = getattr(pipe, "on_end", None)
        if on_end is not None:
            try:
                on_end()
            except Exception as error:  # noqa: BLE001
                self.log("pipe pump: %r" % error)

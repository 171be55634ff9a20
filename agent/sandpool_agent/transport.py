"""The agent's byte stream: NDJSON frames over stdio, an accepted unix-socket connection, or a
character device (virtio-serial). Reading is bounded: a line over the limit is skipped up to its
newline and reported, never buffered whole."""

import json
import os
import select
import socket
import threading
import time

MAX_HOST_FRAME = 8 << 20
READ_SIZE = 1 << 20
TOO_LARGE = object()


class Connection:
    """One host connection. `send` is thread-safe; frames of a closed connection are dropped."""

    def __init__(self, read_fd, write_fd, name):
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.name = name
        self.lock = threading.Lock()
        self.closed = False

    def send(self, frame):
        data = json.dumps(frame, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        payload = memoryview(data.encode("utf-8", "replace") + b"\n")
        with self.lock:
            if self.closed:
                return False
            try:
                while payload:
                    try:
                        payload = payload[os.write(self.write_fd, payload) :]
                    except BlockingIOError:
                        select.select([], [self.write_fd], [], 1.0)
            except OSError:
                self.closed = True
                return False
        return True

    def frames(self):
        """Yield each complete line (bytes) or TOO_LARGE; ends at EOF."""
        buf = bytearray()
        skipping = False
        while True:
            try:
                chunk = os.read(self.read_fd, READ_SIZE)
            except InterruptedError:
                continue
            except BlockingIOError:
                select.select([self.read_fd], [], [], 1.0)
                continue
            except OSError:
                return
            if not chunk:
                return
            start = 0
            while True:
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    break
                if skipping:
                    skipping = False
                else:
                    buf += chunk[start:nl]
                    yield bytes(buf)
                buf.clear()
                start = nl + 1
            if not skipping:
                buf += chunk[start:]
                if len(buf) > MAX_HOST_FRAME:
                    buf.clear()
                    skipping = True
                    yield TOO_LARGE


def serve_stdio(handle_connection, out_fd):
    """stdin/stdout: one connection for the agent's lifetime; EOF ends the agent."""
    conn = Connection(0, out_fd, "stdio")
    handle_connection(conn)


def serve_unix(path, handle_connection, log):
    """Listen on `path`; serve one connection at a time, forever (a host may reconnect)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    os.chmod(path, 0o660)
    server.listen(4)
    log("listening on %s" % path)
    while True:
        client, _ = server.accept()
        conn = Connection(client.fileno(), client.fileno(), "unix")
        try:
            handle_connection(conn)
        finally:
            with conn.lock:
                conn.closed = True
            client.close()


def serve_device(path, handle_connection, log):
    """A virtio-serial port. While the host end is not connected reads return EOF/POLLHUP, so the
    agent waits and keeps the port; each time data flows again it is a new connection."""
    fd = None
    while fd is None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as error:
            log("waiting for device %s: %s" % (path, error))
            time.sleep(0.5)
    log("opened %s" % path)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        events = poller.poll(1000)
        if not any(ev & select.POLLIN for _, ev in events):
            if events:
                time.sleep(0.1)  # POLLHUP: host side not connected yet
            continue
        conn = Connection(fd, fd, "device")
        handle_connection(conn)
        with conn.lock:
            conn.closed = True
        time.sleep(0.1)

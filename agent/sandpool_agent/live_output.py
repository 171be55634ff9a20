"""Sends one execution's output to the host while the code runs (`output` and `display` frames).

Output arrives from the pipe pump (kernels, shell commands) in pieces as small as one `print`.
Sending a frame per piece would flood the host with tiny frames, so pieces are queued and the
agent's one relay thread sends what has gathered, at most one burst every COALESCE_S: a quiet
stream is delivered within a few milliseconds, a flood in large frames. Order across streams is
the order pieces arrived here.

The relay is started with the agent, before the session's code runs, and serves every execution:
code that forks until the process limit (which the agent shares) cannot keep its output, or its
result, from being sent (see workers.py).
"""

import threading
import time

from workers import start_once

OUTPUT_FRAME_CHARS = 65536  # ≤ 256 KiB of UTF-8 per output frame
COALESCE_S = 0.005


class OutputRelay:
    """The thread that sends every LiveOutput's queued pieces."""

    def __init__(self, log):
        self.log = log
        self.cond = threading.Condition()
        self.due = []  # LiveOutputs with queued pieces, in the order they got their first one
        self.thread = None

    def start(self):
        """Idempotent. Raises RuntimeError when the thread cannot be started."""
        start_once(self, self.cond, "output-relay")

    def schedule(self, live):
        with self.cond:
            if not live.scheduled:
                live.scheduled = True
                self.due.append(live)
                self.cond.notify()

    def _run(self):
        while True:
            with self.cond:
                while not self.due:
                    self.cond.wait()
            time.sleep(COALESCE_S)  # let a burst gather into one frame
            with self.cond:
                due, self.due = self.due, []
                for live in due:
                    live.scheduled = False
            for live in due:
                try:
                    live.flush()
                except Exception as error:  # noqa: BLE001 - one execution's output must not stop the others'
                    self.log("output relay: %r" % error)


class LiveOutput:
    def __init__(self, send, relay):
        """`send(frame_fields)` writes one frame (the caller adds type and id)."""
        self.send = send
        self.relay = relay
        self.lock = threading.Lock()  # guards pending and closed
        self.sending = threading.Lock()  # one flush at a time, so frames keep their order
        self.pending = []  # [kind, payload]; adjacent text of one stream is merged
        self.closed = False
        self.scheduled = False  # guarded by the relay's lock

    def text(self, stream, text):
        if not text:
            return
        with self.lock:
            if self.closed:
                return
            last = self.pending[-1] if self.pending else None
            if last is not None and last[0] == stream:
                last[1].append(text)
            else:
                self.pending.append([stream, [text]])
        self.relay.schedule(self)

    def display(self, image):
        with self.lock:
            if self.closed:
                return
            self.pending.append(["display", image])
        self.relay.schedule(self)

    def flush(self):
        """Send what is queued (on the relay thread, or the caller's at close)."""
        with self.sending:
            with self.lock:
                batch, self.pending = self.pending, []
            for kind, payload in batch:
                self._send(kind, payload)

    def _send(self, kind, payload):
        if kind == "display":
            self.send({"type": "display", "image": payload})
            return
        text = "".join(payload)
        for start in range(0, len(text), OUTPUT_FRAME_CHARS):
            self.send({"type": "output", "stream": kind, "data": text[start : start + OUTPUT_FRAME_CHARS]})

    def close(self):
        """Send everything still queued and stop; later pieces are dropped. Returns after the last frame."""
        with self.lock:
            self.closed = True
        self.flush()

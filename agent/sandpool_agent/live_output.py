"""Sends one execution's output to the host while the code runs (`output` and `display` frames).

Output arrives from two reader threads (stdout, stderr) in pieces as small as one `print`. Sending a
frame per piece would flood the host with tiny frames, so pieces are queued and a sender thread
sends what has gathered, at most one burst every COALESCE_S: a quiet stream is delivered within a
few milliseconds, a flood in large frames. Order across streams is the order pieces arrived here.
"""

import threading
import time

OUTPUT_FRAME_CHARS = 65536  # ≤ 256 KiB of UTF-8 per output frame
COALESCE_S = 0.005


class LiveOutput:
    def __init__(self, send):
        """`send(frame_fields)` writes one frame (the caller adds type and id)."""
        self.send = send
        self.cond = threading.Condition()
        self.pending = []  # [kind, payload]; adjacent text of one stream is merged
        self.closed = False
        self.thread = None

    def text(self, stream, text):
        if not text:
            return
        with self.cond:
            if self.closed:
                return
            last = self.pending[-1] if self.pending else None
            if last is not None and last[0] == stream:
                last[1].append(text)
            else:
                self.pending.append([stream, [text]])
            self._wake()

    def display(self, image):
        with self.cond:
            if self.closed:
                return
            self.pending.append(["display", image])
            self._wake()

    def _wake(self):
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, daemon=True, name="live-output")
            self.thread.start()
        self.cond.notify()

    def _run(self):
        while True:
            with self.cond:
                while not self.pending and not self.closed:
                    self.cond.wait()
                if not self.pending:
                    return
                hurry = self.closed
            if not hurry:
                time.sleep(COALESCE_S)  # let a burst gather into one frame
            with self.cond:
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
        with self.cond:
            self.closed = True
            thread = self.thread
            self.cond.notify()
        if thread is not None:
            thread.join()
        with self.cond:
            batch, self.pending = self.pending, []
        for kind, payload in batch:
            self._send(kind, payload)

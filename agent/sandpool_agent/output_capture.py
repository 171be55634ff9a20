"""Capture of a kernel's stdout/stderr pipes, capped at the source.

The kernel's file descriptors 1 and 2 are pipes the agent's pipe pump (pipe_pump.py) drains for
the kernel's whole life, so output from C extensions and child processes is captured too. Bytes are attributed to
the running execution (the "sink"), decoded and handed on as it arrives (the agent streams it to
the host), and kept only up to its cap; the rest is counted and dropped, so session output never
grows the agent's memory. The kernel ends each execution by writing a
per-execution marker to both pipes; seeing it tells us every byte of that execution has arrived.
"""

import codecs
import threading
import time

class StreamSink:
    """Bytes of one stream of one execution, capped, decoded as they arrive. Each decoded piece is
    passed to `on_text` at once (live streaming to the host) and kept, so the pieces joined are
    exactly the final text. A UTF-8 sequence split across reads is held back by the decoder; one
    cut by the cap is dropped, so the cut lands on a character boundary."""

    def __init__(self, name, cap, on_text=None):
        self.name = name
        self.cap = cap
        self.on_text = on_text
        self.parts = []
        self.kept = 0  # bytes given to the decoder (at most the cap)
        self.total = 0  # bytes seen, cap or not
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.finished = False
        self.lock = threading.Lock()  # the reader thread and a late flush may both add
        self.marker_seen = threading.Event()

    def add(self, chunk):
        with self.lock:
            if self.finished:
                return
            self.total += len(chunk)
            room = self.cap - self.kept
            if room <= 0 or not chunk:
                return
            piece = chunk[:room]
            self.kept += len(piece)
            self._emit(self.decoder.decode(piece))

    def add_text(self, text):
        """A note from the agent itself (timeout, restart); never cut, never counted against the cap."""
        with self.lock:
            if not self.finished:
                self._emit(text)

    def _emit(self, text):
        if text:
            self.parts.append(text)
            if self.on_text is not None:
                self.on_text(self.name, text)

    @property
    def truncated(self):
        return self.total > self.cap

    def finish(self):
        """Flush the decoder and, when capped, add the visible marker. Idempotent."""
        with self.lock:
            if self.finished:
                return
            if self.truncated:
                held = len(self.decoder.getstate()[0])  # a character cut by the cap: left out
                self._emit("\n[sandpool: %s truncated: %d more bytes not shown]\n" % (self.name, self.total - (self.kept - held)))
            else:
                self._emit(self.decoder.decode(b"", True))
            self.finished = True

    def text(self):
        """Everything emitted so far (the whole stream once `finish` ran)."""
        return "".join(self.parts)


class ExecutionSink:
    """Where a kernel's output goes during one execution."""

    def __init__(self, marker, cap, on_text=None):
        self.marker = marker
        self.streams = {"stdout": StreamSink("stdout", cap, on_text), "stderr": StreamSink("stderr", cap, on_text)}

    def wait_markers(self, deadline):
        """Wait (until the monotonic `deadline`) for both streams' markers; False if one never came."""
        for stream in self.streams.values():
            if not stream.marker_seen.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True


def _marker_prefix_at_end(data, marker):
    """Length of the longest tail of `data` that is a proper prefix of `marker` (0 if none)."""
    start = max(0, len(data) - (len(marker) - 1))
    at = data.find(marker[:1], start)
    while at >= 0:
        if marker.startswith(data[at:]):
            return len(data) - at
        at = data.find(marker[:1], at + 1)
    return 0


class PipeReader:
    """Attributes one kernel pipe's bytes (fed by the pipe pump) to the current sink, or drops them
    between executions."""

    def __init__(self, stream, owner):
        self.stream = stream
        self.owner = owner  # has .current_sink() -> ExecutionSink | None
        self.pending = b""
        self.pending_sink = None

    def feed(self, chunk):
        sink = self.owner.current_sink()
        if sink is not self.pending_sink:
            self.pending = b""  # held-back bytes belonged to an execution that is over
            self.pending_sink = sink
        if sink is None:
            return
        target = sink.streams[self.stream]
        if target.marker_seen.is_set():
            return  # late output after the marker (a background thread): not this execution's
        data = self.pending + chunk
        marker = sink.marker
        idx = data.find(marker)
        if idx >= 0:
            target.add(data[:idx])
            self.pending = b""
            target.marker_seen.set()
            return
        # Hold back only a tail that could be the start of a marker split across reads (the
        # marker starts with a control character), so ordinary output streams without delay.
        keep = _marker_prefix_at_end(data, marker)
        if keep:
            target.add(data[: len(data) - keep])
            self.pending = data[len(data) - keep :]
        else:
            target.add(data)
            self.pending = b""

    def flush_pending(self, sink):
        """Give held-back bytes to `sink` when its marker never came (the fd was redirected)."""
        if self.pending_sink is sink and self.pending:
            sink.streams[self.stream].add(self.pending)
            self.pending = b""

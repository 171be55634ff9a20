"""Capture of a kernel's stdout/stderr pipes, capped at the source.

The kernel's file descriptors 1 and 2 are pipes read by one thread each for the kernel's whole
life, so output from C extensions and child processes is captured too. Bytes are attributed to
the running execution (the "sink") and kept only up to its cap; the rest is counted and dropped,
so session output never grows the agent's memory. The kernel ends each execution by writing a
per-execution marker to both pipes; seeing it tells us every byte of that execution has arrived.
"""

import os
import threading
import time

READ_SIZE = 65536


def utf8_cut(data, limit):
    """The longest prefix of `data` of at most `limit` bytes that does not split a UTF-8 sequence."""
    if len(data) <= limit:
        return data
    end = limit
    # data[end] is the first byte left out; while it is a continuation byte (10xxxxxx) the
    # character it belongs to started earlier and would be split, so leave that character out too.
    steps = 0
    while end > 0 and steps < 3 and (data[end] & 0xC0) == 0x80:
        end -= 1
        steps += 1
    return data[:end]


class StreamSink:
    """Bytes of one stream of one execution, capped. A few bytes past the cap are kept so the cut
    can land on a character boundary."""

    SLACK = 4

    def __init__(self, name, cap):
        self.name = name
        self.cap = cap
        self.data = bytearray()
        self.total = 0
        self.marker_seen = threading.Event()

    def add(self, chunk):
        self.total += len(chunk)
        room = self.cap + self.SLACK - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self):
        return self.total > self.cap

    def text(self):
        """Decoded text, cut on a character boundary, with a visible marker when capped."""
        data = bytes(self.data)
        if not self.truncated:
            return data.decode("utf-8", "replace")
        kept = utf8_cut(data, self.cap)
        return kept.decode("utf-8", "replace") + (
            "\n[sandpool: %s truncated: %d more bytes not shown]\n" % (self.name, self.total - len(kept))
        )


class ExecutionSink:
    """Where a kernel's output goes during one execution."""

    def __init__(self, marker, cap):
        self.marker = marker
        self.streams = {"stdout": StreamSink("stdout", cap), "stderr": StreamSink("stderr", cap)}

    def wait_markers(self, deadline):
        """Wait (until the monotonic `deadline`) for both streams' markers; False if one never came."""
        for stream in self.streams.values():
            if not stream.marker_seen.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True


class PipeReader(threading.Thread):
    """Drains one pipe forever; hands bytes to the current sink or drops them between executions."""

    def __init__(self, fd, stream, owner):
        super().__init__(daemon=True, name="capture-%s" % stream)
        self.fd = fd
        self.stream = stream
        self.owner = owner  # has .current_sink() -> ExecutionSink | None
        self.pending = b""
        self.pending_sink = None

    def run(self):
        try:
            while True:
                try:
                    chunk = os.read(self.fd, READ_SIZE)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                self.feed(chunk)
        finally:
            try:
                os.close(self.fd)
            except OSError:
                pass

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
        # Hold back a tail that could be the start of a marker split across reads.
        keep = min(len(data), len(marker) - 1)
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

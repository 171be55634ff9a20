"""Shell executions: `/bin/sh -c CMD` or an argv, in the data dir, in their own process group,
with optional stdin, capped output and a time limit that kills the whole group."""

import os
import signal
import subprocess
import threading
import time

from kernel_process import prefer_for_oom_kill
from output_capture import StreamSink

TERM_GRACE_S = 0.5
DRAIN_WAIT_S = 0.5


def _kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_shell(code, argv, stdin, timeout_s, cap, cancel, cwd, env, pump, on_text=None):
    """Returns (exit_code, stdout_sink, stderr_sink, timed_out, note); both sinks are finished.
    `on_text(stream, text)` receives the output as it arrives. The pipes go to `pump` (a
    PipePump): a command needs no thread of its own, only its process."""
    out, err = StreamSink("stdout", cap, on_text), StreamSink("stderr", cap, on_text)
    try:
        return _run(code, argv, stdin, timeout_s, cancel, cwd, env, pump, out, err)
    finally:
        out.finish()
        err.finish()


def _spawn_error(command, error, err):
    if isinstance(error, FileNotFoundError):
        err.add(("%s: command not found\n" % command[0]).encode("utf-8", "replace"))
        return 127
    if isinstance(error, PermissionError):
        err.add(("%s: permission denied\n" % command[0]).encode("utf-8", "replace"))
        return 126
    err.add(("%s: %s\n" % (command[0], error)).encode("utf-8", "replace"))  # EAGAIN: no pid left
    return 126


def _run(code, argv, stdin, timeout_s, cancel, cwd, env, pump, out, err):
    command = list(argv) if argv else ["/bin/sh", "-c", code]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin is not None else (subprocess.DEVNULL, None)
    ours, theirs = [out_r, err_r, in_w], [out_w, err_w, in_r]
    try:
        pump.start()
        proc = subprocess.Popen(
            command, stdin=in_r, stdout=out_w, stderr=err_w, cwd=cwd, env=env, start_new_session=True
        )
    except (OSError, RuntimeError) as error:
        for fd in ours + theirs:
            if isinstance(fd, int) and fd >= 0:
                os.close(fd)
        return _spawn_error(command, error, err), out, err, False, ""
    for fd in theirs:
        if isinstance(fd, int) and fd >= 0:
            os.close(fd)
    prefer_for_oom_kill(proc.pid)
    drained = [threading.Event(), threading.Event()]
    pump.read(out_r, out.add, drained[0].set)
    pump.read(err_r, err.add, drained[1].set)
    if in_w is not None:
        pump.write(in_w, stdin.encode("utf-8"))
    deadline = time.monotonic() + timeout_s
    timed_out = cancelled = False
    while True:
        try:
            proc.wait(timeout=max(0.0, min(0.1, deadline - time.monotonic())))
            break
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set() or time.monotonic() >= deadline:
            timed_out, cancelled = not cancel.is_set(), cancel.is_set()
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=TERM_GRACE_S)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
            break
    if timed_out or cancelled:
        _kill_group(proc.pid, signal.SIGKILL)  # background children of a killed command go too
    # Background children may keep the pipes open; wait briefly, then report what we have (the
    # pump keeps draining those pipes, dropping what comes, until the children close them).
    drain_until = time.monotonic() + DRAIN_WAIT_S
    for event in drained:
        event.wait(max(0.0, drain_until - time.monotonic()))
    code_ = proc.returncode
    exit_code = 128 - code_ if code_ < 0 else code_
    note = ""
    if timed_out:
        note = "Execution timed out after %d ms; the command was killed.\n" % int(timeout_s * 1000)
    elif cancelled:
        note = "Execution cancelled; the command was killed.\n"
    return exit_code, out, err, timed_out, note

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


def _drain(pipe, sink):
    try:
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            if not chunk:
                break
            sink.add(chunk)
    except (OSError, ValueError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _feed(pipe, data):
    try:
        pipe.write(data)
    except (BrokenPipeError, OSError, ValueError):
        pass  # the program did not read all of its input; that is its business
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_shell(code, argv, stdin, timeout_s, cap, cancel, cwd, env, on_text=None):
    """Returns (exit_code, stdout_sink, stderr_sink, timed_out, note); both sinks are finished.
    `on_text(stream, text)` receives the output as it arrives."""
    out, err = StreamSink("stdout", cap, on_text), StreamSink("stderr", cap, on_text)
    try:
        return _run(code, argv, stdin, timeout_s, cancel, cwd, env, out, err)
    finally:
        out.finish()
        err.finish()


def _run(code, argv, stdin, timeout_s, cancel, cwd, env, out, err):
    command = list(argv) if argv else ["/bin/sh", "-c", code]
    try:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError:
        err.add(("%s: command not found\n" % command[0]).encode("utf-8", "replace"))
        return 127, out, err, False, ""
    except PermissionError:
        err.add(("%s: permission denied\n" % command[0]).encode("utf-8", "replace"))
        return 126, out, err, False, ""
    except OSError as error:
        err.add(("%s: %s\n" % (command[0], error)).encode("utf-8", "replace"))
        return 126, out, err, False, ""
    prefer_for_oom_kill(proc.pid)
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    if stdin is not None:
        readers.append(threading.Thread(target=_feed, args=(proc.stdin, stdin.encode("utf-8")), daemon=True))
    for thread in readers:
        thread.start()
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
    # Background children may keep the pipes open; wait briefly, then report what we have.
    for thread in readers[:2]:
        thread.join(DRAIN_WAIT_S)
    code_ = proc.returncode
    exit_code = 128 - code_ if code_ < 0 else code_
    note = ""
    if timed_out:
        note = "Execution timed out after %d ms; the command was killed.\n" % int(timeout_s * 1000)
    elif cancelled:
        note = "Execution cancelled; the command was killed.\n"
    return exit_code, out, err, timed_out, note

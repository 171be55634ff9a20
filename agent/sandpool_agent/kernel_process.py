"""One stateful kernel (Python or Node.js) run as a child process, and everything around it:
start with readiness handshake, captured output, time limit with SIGINT then kill, crash
detection, restart. The agent keeps one `Kernel` per language; executions on it run one at a time.
"""

import os
import secrets
import signal
import subprocess
import threading
import time

from forked_child import fork_child
from incarnation import TIMEOUT, Incarnation, kill_group
from output_capture import ExecutionSink

MARKER_WAIT_S = 1.0
START_STDERR_CAP = 16384


class KernelStartError(Exception):
    pass


class SessionOpError(Exception):
    """A checkpoint, restore or reseed request the kernel refused or failed."""


def prefer_for_oom_kill(pid):
    """Make the OOM killer pick this child before the agent: a memory bomb in a cell should cost
    the kernel (reported as a restart), not the whole session. Raising the score needs no privilege."""
    try:
        with open("/proc/%d/oom_score_adj" % pid, "w") as handle:
            handle.write("1000")
    except OSError:
        pass


def describe_exit(code):
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal %d" % -code
        hint = " (possibly out of memory)" if -code == signal.SIGKILL else ""
        return "was killed by %s%s" % (name, hint)
    return "exited with code %d" % code


class Kernel:
    def __init__(self, label, argv_builder, cwd, env, log, pump, background, start_timeout_s=180.0, fork_runner=None):
        self.label = label  # "Python" / "JavaScript"
        self.argv_builder = argv_builder
        self.pump = pump  # the agent's PipePump: reads every incarnation's stdout and stderr
        self.background = background  # Workers.submit: runs a restart off the execution's thread
        # Zygote-born agents fork their first kernel from themselves (everything is imported
        # already): fork_runner(ctl_in, ctl_out) runs the kernel in the child. Once only: a
        # restart happens in a threaded agent, where only exec is safe.
        self.fork_runner = fork_runner
        self.cwd = cwd
        self.env = env
        self.log = log
        self.start_timeout_s = start_timeout_s
        self.current = None
        self.ready_info = None
        self.lock = threading.Lock()  # one execution at a time
        self.on_display = None  # the running execution's image callback
        self.state_lock = threading.Lock()  # guards starting and replacing `current`
        self.waiting = 0

    # ---- lifecycle ----

    def start(self):
        """Start a fresh process and wait for its `ready` message. Raises KernelStartError."""
        c2k_r, c2k_w = os.pipe()
        k2c_r, k2c_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd in (c2k_w, k2c_r, out_r, err_r):
            os.set_inheritable(fd, False)
        runner, self.fork_runner = self.fork_runner, None
        try:
            env = self.env() if callable(self.env) else self.env
            if runner is not None and threading.active_count() == 1:
                proc = fork_child(lambda: runner(c2k_r, k2c_w), (c2k_r, k2c_w), out_w, err_w, self.cwd, env)
            else:
                proc = subprocess.Popen(
                    self.argv_builder(c2k_r, k2c_w),
                    stdin=subprocess.DEVNULL,
                    stdout=out_w,
                    stderr=err_w,
                    pass_fds=(c2k_r, k2c_w),
                    cwd=self.cwd,
                    env=env,
                    start_new_session=True,  # its own process group, so a kill takes its children too
                )
        except OSError as error:
            for fd in (c2k_r, c2k_w, k2c_r, k2c_w, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise KernelStartError("cannot start the %s kernel: %s" % (self.label, error)) from error
        for fd in (c2k_r, k2c_w, out_w, err_w):
            os.close(fd)
        prefer_for_oom_kill(proc.pid)
        try:
            self.pump.start()  # the first kernel's start starts it (after the fork: see fork_runner)
        except RuntimeError as error:
            kill_group(proc)
            for fd in (c2k_w, k2c_r, out_r, err_r):
                os.close(fd)
            raise KernelStartError("cannot start the %s kernel: %s" % (self.label, error)) from error
        inc = Incarnation(proc, c2k_w, k2c_r, out_r, err_r, self.pump)
        # Keep the start-up stderr for the error message (its marker never comes).
        startup = ExecutionSink(b"\x00" + secrets.token_hex(16).encode(), START_STDERR_CAP)
        inc.sink = startup
        message = inc.read_message(self.start_timeout_s)
        inc.sink = None
        if message is TIMEOUT or not message or message.get("type") != "ready":
            inc.kill()
            detail = startup.streams["stderr"].text().strip()[-4000:]
            raise KernelStartError(
                "the %s kernel failed to start (%s)%s"
                % (self.label, describe_exit(inc.exit_code(1)), (": " + detail) if detail else "")
            )
        self.current = inc
        self.ready_info = message
        return message

    def ensure_started(self):
        """Start the kernel unless a live one exists; returns a note when it replaced a dead one. Serialised, so a background restart and an
        execution arriving meanwhile never start two kernels: the execution waits for the restart."""
        with self.state_lock:
            current = self.current
            if current is not None and current.proc.poll() is None:
                return None
            note = None
            if current is not None:
                # It died between executions (a background thread, an OOM kill): say so, since
                # the next execution runs in a fresh kernel without the session's state.
                note = "Kernel restarted: the %s kernel %s while idle; its state (variables, imports) was lost.\n" % (
                    self.label, describe_exit(current.proc.returncode))
                current.kill()
                self.current = None
            self.start()
            return note

    def restart_in_background(self):
        self.background(self._restart)

    def _restart(self):
        try:
            self.ensure_started()
        except KernelStartError as error:
            self.log("kernel restart failed: %s" % error)

    def session_op(self, message, timeout_s, side=None):
        """Send a checkpoint/restore/reseed request (session_state.py) to the running kernel and
        return its report. The caller holds `lock`. A kernel that does not answer in time is killed
        and restarted: its state is suspect. Raises SessionOpError. `side` is served while waiting
        (see Incarnation.read_message)."""
        inc = self.current
        if inc is None or inc.proc.poll() is not None:
            raise SessionOpError("the %s kernel is not running" % self.label)
        try:
            inc.send(message)
        except OSError as error:
            raise SessionOpError("the %s kernel is gone: %s" % (self.label, error)) from error
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            answer = inc.read_message(remaining, side) if remaining > 0 else TIMEOUT
            if answer is TIMEOUT or answer is None:
                inc.kill()
                self.current = None
                self.restart_in_background()
                what = "did not answer within %d s" % timeout_s if answer is TIMEOUT else "died"
                raise SessionOpError("the %s kernel %s during %s; it was restarted" % (self.label, what, message["type"]))
            if answer.get("type") != "result":
                continue  # anything else on the control channel is ignored, as for executions
            if "error" in answer:
                raise SessionOpError("%s kernel: %s" % (self.label, str(answer["error"])[:2000]))
            report = answer.get("report")
            return report if isinstance(report, dict) else {}

    def shutdown(self):
        if self.current is not None:
            self.current.kill()
            self.current = None

    # ---- execution ----

    def execute(self, request, timeout_s, cap, cancel, grace_s, live=None, session_env=None):
        """Run one cell. Returns (answer dict, sink, extra stderr, timed_out, session_state).
        `live` (on_text(stream, text), on_display(image)) receives output and images as they come.
        `session_env` (version, dict) is applied to this incarnation once, before its next cell."""
        self.ensure_started()
        inc = self.current
        marker = "\x1esandpool-end-%s\x1f" % secrets.token_hex(12)
        on_text, on_display = live if live is not None else (None, None)
        sink = ExecutionSink(marker.encode("ascii"), cap, on_text)
        inc.sink = sink
        message = dict(request, marker=marker)
        if session_env is not None and session_env[0] != inc.env_version:
            message["setEnv"] = session_env[1]
            inc.env_version = session_env[0]
        try:
            inc.send(message)
        except OSError:
            pass  # a dead kernel shows up as the end of its control channel below
        deadline = time.monotonic() + timeout_s
        self.on_display = on_display
        try:
            return self._finish_execute(inc, sink, marker, deadline, timeout_s, cancel, grace_s)
        finally:
            self.on_display = None

    def _finish_execute(self, inc, sink, marker, deadline, timeout_s, cancel, grace_s):
        answer, interrupted_by = self._wait(inc, deadline, cancel)
        note, state, timed_out = "", "kept", False
        if answer is None and interrupted_by is None:
            return self._crashed(inc, sink)
        if answer is None:
            # Time is up (or the host cancelled): interrupt, as Ctrl-C in a notebook would.
            timed_out = interrupted_by == "timeout"
            try:
                # Python stops at SIGINT (KeyboardInterrupt). The JavaScript kernel is never signalled:
                # node:vm's own timeout stops synchronous code, the control message rejects an awaited
                # promise, and a SIGINT that lands just after a cell ended would stay pending inside
                # Node and break the *next* cell (seen as "interrupted by SIGINT" on a healthy cell).
                if self.label == "Python":
                    os.kill(inc.proc.pid, signal.SIGINT)
                inc.send({"type": "interrupt", "marker": marker})
            except (ProcessLookupError, OSError):
                pass
            answer, _ = self._wait(inc, time.monotonic() + grace_s, None)
            if answer is None:
                inc.kill()
                self.current = None
                self._collect(inc, sink, 0.2)
                self.restart_in_background()
                what = "timed out" if timed_out else "was cancelled"
                note = (
                    "Kernel restarted: the execution %s and did not stop within %d ms of being interrupted, "
                    "so the %s kernel was restarted and its state (variables, imports) was lost.\n"
                    % (what, int(grace_s * 1000), self.label)
                )
                return {"status": "Failed", "result": "", "images": []}, sink, note, timed_out, "restarted"
            if not answer.get("interrupted"):
                timed_out = False  # it finished on its own just as the limit passed
        if answer.get("timedOut") is True:
            timed_out = True  # the kernel's own timer (node:vm's timeout) fired first
        self._collect(inc, sink, MARKER_WAIT_S)
        if timed_out:
            note = "Execution timed out after %d ms and was interrupted; the session state was kept.\n" % int(
                timeout_s * 1000
            )
        return answer, sink, note, timed_out, state

    def _wait(self, inc, deadline, cancel):
        """(answer, None) on an answer, (None, None) on kernel death, (None, reason) when interrupted."""
        while True:
            remaining = deadline - time.monotonic()
            if cancel is not None and cancel.is_set():
                return None, "cancel"
            if remaining <= 0:
                return None, "timeout"
            message = inc.read_message(min(remaining, 0.1) if cancel is not None else remaining)
            if message is TIMEOUT:
                continue
            if message is None:
                return None, None
            if message.get("type") == "result":
                return message, None
            if message.get("type") == "display" and self.on_display is not None:
                self.on_display(message.get("image"))
            # Anything else on the control channel is ignored (session code may scribble on it).

    def _collect(self, inc, sink, wait_s):
        if not sink.wait_markers(time.monotonic() + wait_s):
            for reader in inc.readers:
                reader.flush_pending(sink)
        inc.sink = None

    def _crashed(self, inc, sink):
        code = inc.exit_code(2.0)
        inc.kill()
        self.current = None
        self._collect(inc, sink, 0.2)
        self.restart_in_background()
        note = "Kernel restarted: the %s kernel %s during this execution; its state (variables, imports) was lost.\n" % (
            self.label,
            describe_exit(code),
        )
        return {"status": "Failed", "result": "", "images": []}, sink, note, False, "restarted"

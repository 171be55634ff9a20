"""Runs `execute` requests: picks the kernel (or the shell), queues, applies the time limit and the
output cap, the session's and the execution's environment variables, and turns what came back into
an `ExecutionOutcome` (minus stdout/stderr, which stream to the host as `output` frames while the
code runs, with images as `display` frames)."""

import os
import shutil
import sys
import threading
import time

from kernel_process import Kernel, KernelStartError
from shell import run_shell
from validate import BadRequest

AGENT_DIR = os.path.dirname(os.path.abspath(__file__))
# Set by zygote.py in an agent born from the zygote: fork_python_kernel(ctl_in, ctl_out, data_dir,
# preload) runs the Python kernel in a child forked from the agent, which imported it already.
fork_python_kernel = None
MAX_QUEUED = 16
MAX_IMAGES = 64
MAX_IMAGE_CHARS = 24 << 20
MAX_RESULT_CHARS = 1 << 20
IMAGE_FORMATS = ("png", "jpeg", "svg")


def _clean_image(value):
    if (
        isinstance(value, dict)
        and value.get("type") == "image"
        and value.get("format") in IMAGE_FORMATS
        and isinstance(value.get("base64_data"), str)
    ):
        return {"type": "image", "format": value["format"], "base64_data": value["base64_data"]}
    return None


def _clean_result(value):
    """The kernel runs session code, so its answer is checked like any untrusted input."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_RESULT_CHARS else value[:MAX_RESULT_CHARS] + "\n[sandpool: result truncated]"
    if isinstance(value, int):
        return value if abs(value) <= 2**53 else str(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    image = _clean_image(value)
    return image if image is not None and len(image["base64_data"]) <= MAX_IMAGE_CHARS else ""


class ImageBudget:
    """Checks the images an execution displays while it runs, like the outcome's images: the
    kernel runs session code, so what it sends on the control channel is untrusted."""

    def __init__(self, send):
        self.send = send
        self.count = 0
        self.chars = 0

    def __call__(self, value):
        image = _clean_image(value)
        if image is None or self.count >= MAX_IMAGES or self.chars + len(image["base64_data"]) > MAX_IMAGE_CHARS:
            return
        self.count += 1
        self.chars += len(image["base64_data"])
        self.send(image)


class Executor:
    def __init__(self, config, log, pump, workers):
        self.config = config
        self.log = log
        self.pump = pump  # PipePump: kernels' and shell commands' pipes
        self.workers = workers  # Workers: kernel restarts off the execution's thread
        base = dict(os.environ)
        base.pop("MPLBACKEND", None)
        # Replaced, never mutated: kernel starts and shells read it from other threads.
        self.env = base
        # Variables bound to the session (env.set); every kernel gets them once, before its next cell.
        self.session_env = (0, {})
        self.kernels = {}
        self.kernels_lock = threading.Lock()
        self.queue_lock = threading.Lock()
        self.running = 0
        self.node = config.node or shutil.which("node")

    def python_kernel(self):
        with self.kernels_lock:
            kernel = self.kernels.get("python")
            if kernel is None:
                script = os.path.join(AGENT_DIR, "python_kernel.py")
                preload = ",".join(self.config.preload)
                python = self.config.python or sys.executable

                def argv(cin, cout):
                    return [python, "-u", script, "--control-in", str(cin), "--control-out", str(cout),
                            "--data-dir", self.config.data_dir, "--preload", preload]

                runner = None
                if fork_python_kernel is not None:
                    data_dir, forker = self.config.data_dir, fork_python_kernel

                    def runner(cin, cout):
                        forker(cin, cout, data_dir, preload)

                kernel = Kernel("Python", argv, self.config.data_dir, lambda: self.env, self.log, self.pump, self.workers.submit,
                                fork_runner=runner)
                self.kernels["python"] = kernel
            return kernel

    def js_kernel(self):
        if not self.node:
            raise BadRequest("JavaScript is not available in this session: Node.js is not installed", "UNSUPPORTED")
        with self.kernels_lock:
            kernel = self.kernels.get("javascript")
            if kernel is None:
                script = os.path.join(AGENT_DIR, "js_kernel.cjs")

                def argv(cin, cout):
                    return [self.node, "--expose-internals", script, "--control-in", str(cin), "--control-out", str(cout),
                            "--data-dir", self.config.data_dir]

                kernel = Kernel("JavaScript", argv, self.config.data_dir, lambda: self.env, self.log, self.pump,
                                self.workers.submit, start_timeout_s=60.0)
                self.kernels["javascript"] = kernel
            return kernel

    def restart(self, language):
        """A fresh kernel (state dropped), once the running execution is over. JavaScript's kernel
        is only stopped: it starts again on the next JavaScript execution."""
        kernel = self.python_kernel() if language == "python" else self.js_kernel()
        with kernel.lock:
            with kernel.state_lock:
                if kernel.current is not None:
                    kernel.current.kill()
                    kernel.current = None
            if language == "python":
                kernel.ensure_started()

    def set_session_env(self, env):
        """Bind variables to the session: kernels started from now on inherit them, running
        kernels set them before their next cell, shell commands see them."""
        version, current = self.session_env
        merged = dict(current, **env)
        self.env = dict(self.env, **env)
        self.session_env = (version + 1, merged)

    def shutdown(self):
        for kernel in list(self.kernels.values()):
            kernel.shutdown()

    def run(self, request, cancel, live, on_start=lambda: None):
        """The outcome; output and images went to `live` (a LiveOutput) as they came. Raises
        BadRequest for requests that cannot run. `on_start` is called when the time limit starts:
        after queueing and any kernel (re)start."""
        if request["language"] == "shell":
            on_start()
            return self._run_shell(request, cancel, live)
        kernel = self.python_kernel() if request["language"] == "python" else self.js_kernel()
        with self.queue_lock:
            if kernel.waiting >= MAX_QUEUED:
                raise BadRequest("too many executions queued on this session", "BUSY")
            kernel.waiting += 1
        try:
            with kernel.lock:
                return self._run_kernel(kernel, request, cancel, live, on_start)
        finally:
            with self.queue_lock:
                kernel.waiting -= 1

    def _run_kernel(self, kernel, request, cancel, live, on_start):
        if cancel.is_set():
            live.text("stderr", "Execution cancelled before it started.\n")
            return self._outcome("Failed", "", [], 0, False, "kept")
        self.running += 1
        started = time.monotonic()
        try:
            try:
                idle_death = kernel.ensure_started()
            except KernelStartError as error:
                live.text("stderr", "%s\n" % error)
                return self._outcome("Failed", "", [], 0, False, "lost")
            if idle_death:
                live.text("stderr", idle_death)  # first: what follows ran in a fresh kernel
            payload = {"code": request["code"], "timeoutMs": request["timeoutMs"]}
            if request["env"]:
                payload["env"] = request["env"]
            on_start()
            started = time.monotonic()
            answer, sink, note, timed_out, state = kernel.execute(
                payload, request["timeoutMs"] / 1000.0, request["outputMaxBytes"], cancel,
                self.config.interrupt_grace_ms / 1000.0, (live.text, ImageBudget(live.display)), self.session_env,
            )
        except KernelStartError as error:
            live.text("stderr", "%s\n" % error)
            return self._outcome("Failed", "", [], 0, False, "lost")
        finally:
            self.running -= 1
        elapsed = int(round((time.monotonic() - started) * 1000))
        status = "Succeeded" if answer.get("status") == "Succeeded" and not timed_out else "Failed"
        raw_images = answer.get("images")
        raw_images = raw_images[:MAX_IMAGES] if isinstance(raw_images, list) else []
        result = _clean_result(answer.get("result", ""))
        # One budget for all image data of an execution, the result's image included.
        images, image_chars = [], len(result["base64_data"]) if isinstance(result, dict) else 0
        for image in filter(None, map(_clean_image, raw_images)):
            image_chars += len(image["base64_data"])
            if image_chars > MAX_IMAGE_CHARS:
                break
            images.append(image)
        outcome = self._outcome(status, result, images, elapsed, timed_out, state)
        out, err = sink.streams["stdout"], sink.streams["stderr"]
        out.finish()
        err.finish()
        outcome["stdoutTruncated"] = out.truncated
        outcome["stderrTruncated"] = err.truncated
        live.text("stderr", note)  # after the output already streamed, even when the kernel restarted
        if idle_death:
            outcome["sessionState"] = "restarted"
        return outcome

    def _run_shell(self, request, cancel, live):
        started = time.monotonic()
        self.running += 1
        env = dict(self.env, **request["env"]) if request["env"] else self.env
        try:
            exit_code, out, err, timed_out, note = run_shell(
                request["code"], request["argv"], request["stdin"], request["timeoutMs"] / 1000.0,
                request["outputMaxBytes"], cancel, self.config.data_dir, env, self.pump, live.text,
            )
        finally:
            self.running -= 1
        elapsed = int(round((time.monotonic() - started) * 1000))
        status = "Succeeded" if exit_code == 0 and not timed_out else "Failed"
        outcome = self._outcome(status, "", [], elapsed, timed_out, "kept")
        outcome["exitCode"] = exit_code
        outcome["stdoutTruncated"] = out.truncated
        outcome["stderrTruncated"] = err.truncated
        live.text("stderr", note)
        return outcome

    @staticmethod
    def _outcome(status, result, images, elapsed, timed_out, state):
        return {
            "status": status,
            "result": result,
            "images": images,
            "executionTimeInMilliseconds": elapsed,
            "timedOut": timed_out,
            "sessionState": state,
            "stdoutTruncated": False,
            "stderrTruncated": False,
        }

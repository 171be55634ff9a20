"""The Python kernel: a stateful interpreter process with IPython-like cell semantics.

Started by the agent as `python3 -u python_kernel.py --control-in FD --control-out FD ...`. It reads
one JSON request per line from the control-in pipe, runs the cell in a persistent `__main__`
namespace, and answers on the control-out pipe. stdout/stderr (fds 1 and 2) are pipes the agent
captures; after each cell the kernel writes the cell's marker to both so the agent knows the
cell's output is complete. SIGINT interrupts user code only: outside a cell it is ignored, so a
late interrupt cannot kill the kernel's own bookkeeping.
"""

import argparse
import ast
import builtins
import importlib
import json
import linecache
import os
import signal
import sys
import time
import traceback
import types

KERNEL_FILE = os.path.abspath(__file__)
AGENT_DIR = os.path.dirname(KERNEL_FILE)
# The agent's own modules must not shadow the session's imports: drop the agent dir from sys.path
# (IPython puts the working directory first instead), loading our helper modules explicitly.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != AGENT_DIR]
sys.path.insert(0, "")
import importlib.util  # noqa: E402


def _load_helper(name, filename):
    spec = importlib.util.spec_from_file_location(name, os.path.join(AGENT_DIR, filename))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


display = _load_helper("sandpool_agent_display", "display.py")
notebook_compat = _load_helper("sandpool_agent_notebook_compat", "notebook_compat.py")
session_state = _load_helper("sandpool_agent_session_state", "session_state.py")
MPL_BACKEND = "module://sandpool_mpl_backend"


class AgentImports:
    """Meta-path finder: resolves `sandpool_mpl_backend` from the agent dir (without putting the dir
    on sys.path) and selects that backend right after matplotlib is imported, whoever imports it.
    An environment variable would leak into the session's child processes, which lack the finder."""

    def __init__(self):
        self.busy = False

    def find_spec(self, name, path=None, target=None):
        if name == "sandpool_mpl_backend":
            return importlib.util.spec_from_file_location(name, os.path.join(AGENT_DIR, "mpl_backend.py"))
        if name != "matplotlib" or self.busy:
            return None
        self.busy = True
        try:
            spec = None
            for finder in sys.meta_path:
                if finder is not self and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(name, path, target)
                    if spec is not None:
                        break
        finally:
            self.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        original = spec.loader.exec_module

        def exec_module(module):
            original(module)
            try:
                module.use(MPL_BACKEND)
            except Exception:  # noqa: BLE001 - keep matplotlib's default rather than fail the import
                pass

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, AgentImports())

in_user_code = False
interrupt_seen = False  # a SIGINT reached this cell (even if the session caught the KeyboardInterrupt)


def on_sigint(signum, frame):
    global interrupt_seen
    if in_user_code:
        interrupt_seen = True
        raise KeyboardInterrupt()


def install_sigint():
    signal.signal(signal.SIGINT, on_sigint)


class LiveImages(list):
    """The running cell's images. Each is also sent to the agent the moment it is displayed
    (`plt.show()`, `display(fig)`, figures rendered at the end of the cell), which streams it to
    the host while the cell runs; the answer still lists them all."""

    def __init__(self, send):
        super().__init__()
        self._send = send

    def append(self, image):
        super().append(image)
        try:
            self._send({"type": "display", "image": image})
        except BaseException:  # noqa: BLE001 - streaming is best effort; the answer carries the image
            pass


def set_env_for_cell(env):
    """Set one execution's variables; returns a function that puts the previous values back."""
    if not isinstance(env, dict) or not env:
        return lambda: None
    previous = {name: os.environ.get(name) for name in env}
    os.environ.update(env)

    def restore():
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore


class Kernel:
    def __init__(self, ctl_in, ctl_out):
        self.ctl_in = ctl_in
        self.ctl_out = ctl_out
        self.cell = 0
        self.loop = None
        # Private copies of the output pipes (not inherited by child processes): the end-of-cell
        # markers and tracebacks still reach the agent if the session closes or redirects fd 1/2.
        self.out_fds = (os.dup(1), os.dup(2))
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = main
        self.ns = main.__dict__
        self.images = None  # the running cell's images, for display()
        notebook_compat.install(builtins, display, lambda: self.images)

    def send(self, message):
        data = (json.dumps(message, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8", "replace")
        view = memoryview(data)
        while view:
            written = os.write(self.ctl_out, view)
            view = view[written:]

    def preload(self, names):
        loaded, missing = [], []
        started = time.monotonic()
        for name in names:
            try:
                importlib.import_module(name)
                loaded.append(name)
            except BaseException:  # noqa: BLE001 - a broken optional library must not stop the kernel
                missing.append(name)
        return loaded, missing, int((time.monotonic() - started) * 1000)

    def compile_cell(self, code, filename):
        """Compile a cell; the last statement, if an expression, is compiled to return its value."""
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        try:
            tree = ast.parse(code, filename, "exec")
        except SyntaxError:
            # Notebook lines (`!pip install`, `%matplotlib inline`) are rewritten only when the
            # cell is not valid Python as it is; the original error stands if that does not help.
            rewritten = notebook_compat.rewrite(code)
            if rewritten is None:
                raise
            try:
                tree = ast.parse(rewritten, filename, "exec")
            except SyntaxError:
                tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
        expr = compile(last, filename, "eval", flags=flags, dont_inherit=True) if last is not None else None
        return body, expr

    def evaluate(self, compiled):
        result = eval(compiled, self.ns)  # noqa: S307 - running session code is the kernel's job
        if compiled.co_flags & 0x80 and hasattr(result, "__await__"):  # CO_COROUTINE: top-level await
            if self.loop is None:
                import asyncio

                self.loop = asyncio.new_event_loop()
            result = self.loop.run_until_complete(result)
        return result

    def run_cell(self, code, marker, env=None):
        global in_user_code, interrupt_seen
        self.cell += 1
        filename = "<cell-%d>" % self.cell
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        answer = {"type": "result", "status": "Succeeded", "interrupted": False}
        images = LiveImages(self.send)
        restore_env = set_env_for_cell(env)
        display.show_hook = lambda: display.capture_open_figures(images)
        self.images = images
        value = display.NO_VALUE
        install_sigint()  # session code may have replaced it; timeouts must keep working
        interrupt_seen = False
        try:
            in_user_code = True
            body, expr = self.compile_cell(code, filename)
            self.evaluate(body)
            if expr is not None:
                value = self.evaluate(expr)
                if value is not None:
                    # IPython keeps the last value in `_`.
                    self.ns["_"] = value
            answer["result"], answer["images"], notes = display.finish(value, images)
            in_user_code = False
            if notes:
                sys.stderr.write(notes)
        except BaseException as error:  # noqa: BLE001 - every failure of session code is reported
            in_user_code = False
            answer["status"] = "Failed"
            answer["interrupted"] = isinstance(error, KeyboardInterrupt)
            try:
                answer["result"], answer["images"], _ = display.finish(display.NO_VALUE, images, figures_only=True)
            except BaseException:  # noqa: BLE001 - never let reporting take the kernel down
                answer["result"], answer["images"] = "", []
            if isinstance(error, SystemExit) and error.code in (None, 0):
                answer["status"] = "Succeeded"  # exit() / sys.exit(0) in a cell is not a failure
            else:
                self.report(error)
        finally:
            in_user_code = False
            display.show_hook = None
            # A cell that caught the KeyboardInterrupt and finished was still cut short by the limit.
            answer["interrupted"] = answer["interrupted"] or interrupt_seen
            self.images = None
            restore_env()
        self.end_streams(marker)
        self.send(answer)

    def report(self, error):
        hidden = (KERNEL_FILE, os.path.abspath(display.__file__), os.path.abspath(notebook_compat.__file__), ast.__file__)
        try:
            exc = traceback.TracebackException(type(error), error, error.__traceback__, compact=True)
            # Hide the kernel's own frames (the cell runner, the SIGINT handler): only the cell matters.
            for part in self._chain(exc):
                part.stack = traceback.StackSummary.from_list([f for f in part.stack if f.filename not in hidden])
            text = "".join(exc.format())
        except BaseException:  # noqa: BLE001 - a hostile __str__ must not break reporting
            text = "%s (unprintable exception)\n" % type(error).__name__
        try:
            sys.__stderr__.flush()
        except BaseException:  # noqa: BLE001 - closed or replaced by the session
            pass
        self.write_fd(self.out_fds[1], text.encode("utf-8", "replace"))

    @staticmethod
    def write_fd(fd, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            pass

    @staticmethod
    def _chain(exc):
        seen = []
        while exc is not None and len(seen) < 100:
            seen.append(exc)
            exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        return seen

    def end_streams(self, marker):
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001 - the session may have closed or replaced them
                pass
        for fd in self.out_fds:
            self.write_fd(fd, marker)

    def serve(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self.ctl_in, 1 << 20)
            except InterruptedError:
                continue
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                request = json.loads(line)
                kind = request.get("type")
                if kind == "interrupt":
                    continue  # for the JS kernel; Python is interrupted by SIGINT
                if kind in ("checkpoint", "restore", "reseed"):
                    self.session_op(kind, request)
                    continue
                if isinstance(request.get("setEnv"), dict):
                    os.environ.update(request["setEnv"])  # bound to the session: stays
                self.run_cell(request["code"], request["marker"].encode("ascii"), request.get("env"))

    def session_op(self, kind, request):
        """Pause support (session_state.py): answered with one `result` carrying the report or an error."""
        try:
            if kind == "checkpoint":
                report = session_state.checkpoint(self.ns, request["path"])
            elif kind == "restore":
                report = session_state.restore(self.ns, request["path"], request.get("fork") is True)
            else:
                report = session_state.reseed(self.ns)
            answer = {"type": "result", "report": report}
        except BaseException as error:  # noqa: BLE001 - report it; the kernel stays up
            answer = {"type": "result", "error": ("%s: %s" % (type(error).__name__, error))[:2000]}
        try:
            self.send(answer)
        except ValueError:  # a report value JSON cannot carry (NaN in a name): send the error alone
            self.send({"type": "result", "error": "the kernel's report could not be encoded"})


def watch_parent():
    """Exit when the agent dies, even while a cell spins (the control pipe's EOF is only seen when idle)."""
    parent = os.getppid()

    def loop():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    import threading

    threading.Thread(target=loop, daemon=True, name="sandpool-parent-watch").start()


def run(control_in, control_out, data_dir, preload):
    """The kernel's life: set up, import the preloads (instant when forked from the zygote, which
    imported them already), say ready, serve cells until the agent hangs up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.chdir(data_dir)
    for fd in (control_in, control_out):
        os.set_inheritable(fd, False)  # child processes of session code must not reach the channel
    sys.argv = [""]
    watch_parent()
    kernel = Kernel(control_in, control_out)
    names = [n for n in preload.split(",") if n]
    loaded, missing, elapsed = kernel.preload(names)
    install_sigint()
    kernel.send({"type": "ready", "preloaded": loaded, "missing": missing, "preloadMs": elapsed,
                 "python": "%d.%d.%d" % sys.version_info[:3]})
    kernel.serve()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--control-in", type=int, required=True)
    parser.add_argument("--control-out", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preload", default="")
    args = parser.parse_args()
    run(args.control_in, args.control_out, args.data_dir, args.preload)


if __name__ == "__main__":
    main()

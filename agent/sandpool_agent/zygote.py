"""The zygote: one Python process per container backend that has imported the agent, the Python
kernel and its preloads (numpy, pandas, matplotlib) once, and forks a ready agent into each new
container instead of letting every container start Python and import the data stack again (about
a second of CPU and 60 MiB of private memory per session).

Started by the host (backends/container/zygote.ts) as root, chrooted into the session image's
root filesystem (so every library it maps is the image's own), with two directory descriptors: the
host's /proc and /sys/fs/cgroup. It speaks JSON lines on stdin/stdout:

    -> {"op": "spawn", "id": 1, "container": <id>, "pid": <host pid of its first process>,
        "init": [that process's command line], "argv": [the agent's]}
    <- {"id": 1, "ok": true, "pid": <host pid of the agent>}  or  {"id": 1, "ok": false, "error": "..."}

A spawn forks twice. The first child joins the container's cgroups and namespaces (confine.py);
its child is born in the container's pid namespace, takes the container's root, limits, identity,
capabilities and seccomp filters, checks the result against the container's first process, and
only then runs the agent (`__main__.main(argv)`), which forks its first Python kernel from itself.
The zygote never runs session code and holds nothing a session must not see: its memory is the
imported libraries; descriptors, environment and identity are replaced before the agent starts.
"""

import gc
import importlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import time

AGENT_DIR = os.path.dirname(os.path.abspath(__file__))
if AGENT_DIR not in sys.path:
    sys.path.insert(0, AGENT_DIR)

import confine  # noqa: E402

PR_SET_CHILD_SUBREAPER = 36
SPAWN_TIMEOUT_S = 30.0


def load_file(name, filename):
    spec = importlib.util.spec_from_file_location(name, os.path.join(AGENT_DIR, filename))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Zygote:
    def __init__(self, proc_fd, cgroup_fd, preload):
        self.proc_fd = proc_fd
        self.cgroup_fd = cgroup_fd
        # The agent as `python3 -u agent/sandpool_agent` would load it.
        self.agent_main = load_file("sandpool_agent_main", "__main__.py")
        import checkpoint  # noqa: F401
        import execution
        import server  # noqa: F401
        import transport  # noqa: F401

        self.execution = execution
        self.agent_modules = {name for name, m in sys.modules.items() if _from_agent_dir(m)}
        agent_path = list(sys.path)
        # The kernel module sets up the kernel's import machinery (its sys.path, the matplotlib
        # backend hook) as it would in its own process; the agent gets its sys.path back.
        self.kernel = load_file("sandpool_python_kernel", "python_kernel.py")
        self.kernel_path = list(sys.path)
        sys.path[:] = agent_path
        if preload is None:
            preload = list(self.agent_main.DEFAULT_PRELOAD)
        started = time.monotonic()
        self.loaded, self.missing = [], []
        for name in preload:
            try:
                importlib.import_module(name)
                self.loaded.append(name)
            except BaseException:  # noqa: BLE001 - a broken optional library must not stop the zygote
                self.missing.append(name)
        self.preload_ms = int((time.monotonic() - started) * 1000)
        self.node_version = _node_version()
        confine.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # agents whose first parent exits come back to us
        # Everything imported so far is shared copy-on-write by every session: keep the collector
        # off it, or its bookkeeping writes would copy every page into every session.
        gc.collect()
        gc.freeze()

    # ---- in the forked agent and kernel ----

    def fork_kernel(self, ctl_in, ctl_out, data_dir, preload):
        """The agent's first kernel, forked from the agent: a fresh kernel process in all but the
        imports, which it shares with the zygote."""
        for name in list(sys.modules):
            if name in self.agent_modules and not name.startswith("sandpool_"):
                del sys.modules[name]  # the agent's modules must not shadow the session's own
        sys.path[:] = self.kernel_path
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()  # Python's random reseeds itself in a forked child; numpy does not
        multiprocessing_process = sys.modules.get("multiprocessing.process")
        if multiprocessing_process is not None:
            multiprocessing_process.current_process().authkey = os.urandom(32)
        self.kernel.run(ctl_in, ctl_out, data_dir, preload)

    def become_agent(self, target, report_fd, argv):
        """In the child born in the container: confine, then run the agent. Never returns."""
        code = 1
        try:
            target.drop_privileges()
            os.setsid()  # out of the host's session and process group
            null = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                if fd > 2 and fd != report_fd:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            os.environ.clear()
            os.environ.update(target.environ)
            os.environ.setdefault("PWD", os.getcwd())  # as the image's entrypoint shell leaves it
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.execution.fork_python_kernel = self.fork_kernel
            os.write(report_fd, b"ok\n")
            os.close(report_fd)
        except BaseException as error:  # noqa: BLE001 - say why, then die before anything runs
            try:
                os.write(report_fd, ("error %s\n" % error).encode("utf-8", "replace")[:2000])
            except OSError:
                pass
            os._exit(1)
        try:
            code = self.agent_main.main(argv + ["--node-version", self.node_version or ""])
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:  # noqa: BLE001
            code = 1
        finally:
            os._exit(code or 0)

    # ---- in the zygote ----

    def spawn(self, container, pid, init, argv):
        """Fork an agent into `container` (its id), whose first process is `pid` running `init`
        (both checked before anything is read from it); returns the agent's host pid."""
        target = confine.Target(self.proc_fd, self.cgroup_fd, pid, init, container)
        read_end, write_end = os.pipe()
        try:
            sys.stdout.flush()
            middle = os.fork()
            if middle == 0:
                self._enter(target, read_end, write_end, argv)
            os.close(write_end)
            write_end = -1
            answer = _read_all(read_end, SPAWN_TIMEOUT_S)
            os.waitpid(middle, 0)
        finally:
            os.close(read_end)
            if write_end >= 0:
                os.close(write_end)
            target.close()
        lines = answer.decode("utf-8", "replace").splitlines()
        agent = next((int(line[4:]) for line in lines if line.startswith("pid ")), None)
        errors = [line[6:] for line in lines if line.startswith("error ")]
        if errors or agent is None or "ok" not in lines:
            raise confine.ConfineError(errors[0] if errors else "the agent did not confirm its confinement")
        return agent

    def _enter(self, target, read_end, write_end, argv):
        """The middle child: join, fork the agent, report its pid, exit. Never returns."""
        try:
            os.close(read_end)
            target.join_cgroups()
            target.join_namespaces()
            agent = os.fork()
            if agent == 0:
                self.become_agent(target, write_end, argv)
            os.write(write_end, b"pid %d\n" % agent)
        except BaseException as error:  # noqa: BLE001
            try:
                os.write(write_end, ("error %s\n" % error).encode("utf-8", "replace")[:2000])
            except OSError:
                pass
        os._exit(0)

    def reap(self):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return

    def serve(self):
        send({"type": "ready", "preloaded": self.loaded, "missing": self.missing, "preloadMs": self.preload_ms,
              "pid": os.getpid()})
        buffer = b""
        while True:
            readable, _, _ = select.select([0], [], [], 1.0)
            self.reap()
            if not readable:
                continue
            chunk = os.read(0, 65536)
            if not chunk:
                return  # the host is gone
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                self.handle(line)

    def handle(self, line):
        try:
            request = json.loads(line)
            rid = request["id"]
        except (ValueError, KeyError, TypeError):
            send({"ok": False, "error": "bad request"})
            return
        try:
            container, pid, init, argv = request["container"], int(request["pid"]), request["init"], request["argv"]
            for strings in (init, argv):
                if not isinstance(strings, list) or not all(isinstance(a, str) for a in strings):
                    raise ValueError("bad spawn request")
            if pid <= 1 or not init or not isinstance(container, str):
                raise ValueError("bad spawn request")
            send({"id": rid, "ok": True, "pid": self.spawn(container, pid, init, argv)})
        except Exception as error:  # noqa: BLE001 - one failed spawn must not stop the zygote
            send({"id": rid, "ok": False, "error": ("%s: %s" % (type(error).__name__, error))[:2000]})


def _from_agent_dir(module):
    path = getattr(module, "__file__", None)
    return isinstance(path, str) and os.path.dirname(os.path.abspath(path)) == AGENT_DIR


def _node_version():
    try:
        out = subprocess.run(["node", "--version"], input=b"", capture_output=True, timeout=10, check=False)
        return out.stdout.decode("ascii", "replace").strip()[:64] or None
    except (OSError, subprocess.SubprocessError):
        return None


def _read_all(fd, timeout_s):
    deadline = time.monotonic() + timeout_s
    data = b""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def private_tmp():
    """The zygote runs in a mount namespace of its own over the image's read-only root: give it the
    writable /tmp a session has, and matplotlib's font cache there as the image's entrypoint does,
    so the libraries it imports see the paths a session's do."""
    if confine.libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, b"mode=1777,size=64m") != 0:
        raise OSError("cannot mount a tmpfs on /tmp: %s" % os.strerror(confine.ctypes.get_errno()))
    target = os.environ.get("MPLCONFIGDIR")
    cache = os.path.join(os.environ.get("HOME", "/nonexistent"), ".cache", "matplotlib")
    if target and os.path.isdir(cache):
        os.makedirs(target, exist_ok=True)
        for name in os.listdir(cache):
            if name.startswith("fontlist-") and name.endswith(".json"):
                with open(os.path.join(cache, name), "rb") as src, open(os.path.join(target, name), "wb") as dst:
                    dst.write(src.read())


def main():
    import argparse

    parser = argparse.ArgumentParser(prog="zygote")
    parser.add_argument("--proc-fd", type=int, required=True)
    parser.add_argument("--cgroup-fd", type=int, required=True)
    parser.add_argument("--preload", default=None, help="comma-separated modules (default: the agent's)")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    private_tmp()
    zygote = Zygote(args.proc_fd, args.cgroup_fd, None if args.preload is None else [m for m in args.preload.split(",") if m])
    zygote.serve()


if __name__ == "__main__":
    main()

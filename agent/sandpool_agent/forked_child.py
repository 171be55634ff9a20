"""A kernel forked from a zygote-born agent instead of exec'd (zygote.py): the child process and the
little of `subprocess.Popen` that Kernel uses on it."""

import os
import signal
import subprocess
import time


class ForkedProcess:
    """A kernel forked from this (zygote-born) agent instead of exec'd: the little of
    `subprocess.Popen` that Kernel uses, over os.waitpid."""

    def __init__(self, pid):
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired("kernel", timeout)
            time.sleep(0.005)
        return self.returncode

    def kill(self):
        if self.returncode is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def fork_child(run, keep_fds, stdout_fd, stderr_fd, cwd, env):
    """Fork a child that runs `run()` with `keep_fds`, fds 1 and 2 on the given pipes, stdin on
    /dev/null, its own session (a kill of its group takes what it spawned), and nothing else open.
    Only from a single-threaded process (a forked child has just the forking thread)."""
    pid = os.fork()
    if pid != 0:
        return ForkedProcess(pid)
    code = 1
    try:
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(stdout_fd, 1)
        os.dup2(stderr_fd, 2)
        keep = set(keep_fds) | {0, 1, 2}
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        run()
        code = 0
    except SystemExit as error:
        code = error.code if isinstance(error.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must never return into the parent's code
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)

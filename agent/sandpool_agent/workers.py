"""Threads for the requests that take time: executions, downloads, info, kernel restarts,
checkpoint, restore and reseed.

The agent shares its process limit with the session's code (a container's pids cgroup, the VM
guest's RLIMIT_NPROC, both counting threads), so code that forks until the limit leaves the agent
unable to start a thread. A thread per request would then leave the request unanswered. So the
pool keeps `spare` idle threads, started before the session's code runs: a request goes to an idle
thread, and a replacement is started while threads can be started. When none can, the next request
waits for a busy thread to finish (executions on one kernel run one at a time anyway) instead of
failing. Threads beyond the spares end when their request is done, so an idle agent holds only
`spare` pids more than it needs.
"""

import collections
import threading


def start_once(owner, lock, name):
    """Start `owner._run` on a daemon thread called `name` unless `owner.thread` is set: the one
    long-lived thread of a service (the pipe pump, the output relay), started before session code
    runs. Idempotent. Raises RuntimeError when the thread cannot be started."""
    with lock:
        if owner.thread is None:
            thread = threading.Thread(target=owner._run, daemon=True, name=name)
            thread.start()
            owner.thread = thread


class Workers:
    def __init__(self, spare, log):
        self.spare = spare
        self.log = log
        self.cond = threading.Condition()
        self.tasks = collections.deque()
        self.idle = 0  # threads not running a task (including those just started)

    def start(self):
        """Start the spare threads. Raises RuntimeError when they cannot be started."""
        with self.cond:
            while self.idle < self.spare:
                self._add_thread()

    def submit(self, work, *args):
        """Run `work(*args)` on a pool thread; never raises for lack of threads."""
        with self.cond:
            self.tasks.append((work, args))
            self.cond.notify()
            while self.idle - len(self.tasks) < self.spare:
                try:
                    self._add_thread()
                except RuntimeError:  # no pid left: a busy thread takes the task when it is done
                    break

    def _add_thread(self):
        """With `cond` held. Raises RuntimeError ("can't start new thread")."""
        thread = threading.Thread(target=self._work, daemon=True, name="agent-worker")
        self.idle += 1
        try:
            thread.start()
        except BaseException:
            self.idle -= 1
            raise

    def _work(self):
        self.cond.acquire()
        try:
            while True:
                while not self.tasks:
                    if self.idle > self.spare:
                        self.idle -= 1  # more idle threads than needed: give the pid back
                        return
                    self.cond.wait()
                work, args = self.tasks.popleft()
                self.idle -= 1
                self.cond.release()
                try:
                    work(*args)
                except BaseException as error:  # noqa: BLE001 - a task must never take its thread down
                    self.log("internal error in %s: %r" % (getattr(work, "__name__", "a task"), error))
                finally:
                    self.cond.acquire()
                    self.idle += 1
        finally:
            self.cond.release()

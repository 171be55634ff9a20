"""The agent: answers host frames on a connection. The reader thread handles cheap requests inline
(ping, file metadata, upload chunks, so uploads follow the stream's backpressure) and hands
executions, downloads and info to worker threads, so a ping is answered while code runs.

Every thread the agent needs to answer is started before the session's code runs (workers.py,
pipe_pump.py, live_output.py): the agent shares the session's process limit, and code that forks
until it is spent must not leave a request unanswered."""

import base64
import collections
import json
import os
import platform
import subprocess
import threading
import time

import checkpoint
from execution import Executor
from files import DataDir, FileOpError
from kernel_process import SessionOpError
from live_output import LiveOutput, OutputRelay
from pipe_pump import PipePump
from transport import TOO_LARGE
from validate import (
    BadRequest,
    bool_field,
    chunk_data,
    env_field,
    execute_request,
    int_field,
    path_field,
    request_id,
    socket_field,
)
from workers import Workers

AGENT_VERSION = "1.0.0"
PROTOCOL = 1
DOWNLOAD_CHUNK = 256 << 10
MAX_PACKAGES = 2000
MAX_TRANSFERS = 64  # per connection and direction: each holds file descriptors (and a worker)
# Idle worker threads kept for requests: enough to run an execution, interrupt nothing (cancel is
# inline), and serve a download or info beside it when no new thread can be started.
SPARE_WORKERS = 2


class Download:
    """Streams one file to the host, at most `credits` chunks ahead of what the host consumed."""

    def __init__(self, conn, rid, fd, window, done):
        self.conn, self.rid, self.fd, self.done = conn, rid, fd, done
        self.credits = window
        self.cond = threading.Condition()
        self.cancelled = False

    def credit(self, chunks):
        with self.cond:
            self.credits = min(self.credits + chunks, 1 << 20)
            self.cond.notify()

    def cancel(self):
        with self.cond:
            self.cancelled = True
            self.cond.notify()

    def run(self):
        try:
            while True:
                with self.cond:
                    while self.credits <= 0 and not self.cancelled and not self.conn.closed:
                        self.cond.wait(1.0)
                    if self.cancelled or self.conn.closed:
                        return
                    self.credits -= 1
                data = os.read(self.fd, DOWNLOAD_CHUNK)
                if not data:
                    self.conn.send({"type": "end", "id": self.rid})
                    return
                self.conn.send({"type": "chunk", "id": self.rid, "data": base64.b64encode(data).decode("ascii")})
        except OSError as error:
            self.conn.send({"type": "error", "id": self.rid, "code": "INTERNAL", "message": "read failed: %s" % error})
        finally:
            os.close(self.fd)
            self.done(self.rid)


class ConnectionState:
    def __init__(self, conn):
        self.conn = conn
        self.uploads = {}
        self.failed_uploads = collections.deque(maxlen=256)
        self.downloads = {}
        self.cancels = {}

    def close(self):
        for upload in list(self.uploads.values()):
            upload.abort()
        self.uploads.clear()
        for download in list(self.downloads.values()):
            download.cancel()
        for cancel in list(self.cancels.values()):
            cancel.set()  # nobody is left to read the result: free the kernel


class Agent:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.started = time.monotonic()
        self.data = DataDir(config.data_dir)
        config.data_dir = self.data.root
        self.pump = PipePump(log)
        self.relay = OutputRelay(log)
        self.workers = Workers(SPARE_WORKERS, log)
        self.executor = Executor(config, log, self.pump, self.workers)
        self.ready = None
        self.node_version = None
        self.packages = None

    def start(self):
        """Start the Python kernel (with its preloads); afterwards the agent is ready."""
        # A zygote-born agent is told the version (and forks its kernel: no thread may run yet).
        self.node_version = getattr(self.config, "node_version", None)
        node_thread = None
        if self.node_version is None:
            node_thread = threading.Thread(target=self._detect_node, daemon=True)
            node_thread.start()
        kernel_ready = self.executor.python_kernel().start()  # starts the pipe pump, after a zygote fork
        # The agent's own threads, before any session code: they are what answers once it forks.
        self.relay.start()
        self.workers.start()
        if node_thread is not None:
            node_thread.join(10)
        self.ready = {
            "type": "ready",
            "protocol": PROTOCOL,
            "agentVersion": AGENT_VERSION,
            "pid": os.getpid(),
            "python": str(kernel_ready.get("python") or platform.python_version())[:64],
            "node": self.node_version,
            "preloaded": kernel_ready.get("preloaded", []),
            "missing": kernel_ready.get("missing", []),
            "dataDir": self.data.root,
            "startupMs": int((time.monotonic() - self.started) * 1000),
        }
        self.log("ready in %d ms (preloaded: %s)" % (self.ready["startupMs"], ",".join(self.ready["preloaded"]) or "-"))

    def _detect_node(self):
        if not self.executor.node:
            return
        try:
            out = subprocess.run([self.executor.node, "--version"], capture_output=True, timeout=10, check=False)
            self.node_version = out.stdout.decode("ascii", "replace").strip()[:64] or None
        except (OSError, subprocess.SubprocessError):
            self.node_version = None

    # ---- connection loop ----

    def handle_connection(self, conn):
        state = ConnectionState(conn)
        conn.send(self.ready)
        try:
            for line in conn.frames():
                self.handle_line(state, line)
        finally:
            state.close()

    def handle_line(self, state, line):
        conn = state.conn
        if line is TOO_LARGE:
            conn.send(_error(None, "BAD_REQUEST", "frame longer than the agent accepts"))
            return
        if not line.strip():
            return
        try:
            frame = json.loads(line)
        except ValueError:
            conn.send(_error(None, "BAD_REQUEST", "frame is not valid JSON"))
            return
        if not isinstance(frame, dict):
            conn.send(_error(None, "BAD_REQUEST", "frame must be a JSON object"))
            return
        rid = request_id(frame)
        op = frame.get("op")
        handler = self.HANDLERS.get(op) if isinstance(op, str) else None
        if rid is None or handler is None:
            message = "invalid or missing id" if rid is None else "unknown op %r" % str(op)[:64]
            conn.send(_error(rid, "BAD_REQUEST", message))
            return
        try:
            handler(self, state, rid, frame)
        except (BadRequest, FileOpError) as error:
            conn.send(_error(rid, error.code, error.message))
        except Exception as error:  # noqa: BLE001 - one bad request must not take the agent down
            self.log("internal error in %s: %r" % (op, error))
            conn.send(_error(rid, "INTERNAL", "internal agent error: %s" % type(error).__name__))

    # ---- ops ----

    def op_hello(self, state, rid, frame):
        state.conn.send(dict(self.ready, id=rid))

    def op_ping(self, state, rid, frame):
        uptime = int((time.monotonic() - self.started) * 1000)
        state.conn.send({"type": "pong", "id": rid, "busy": self.executor.running > 0, "uptimeMs": uptime})

    def op_info(self, state, rid, frame):
        self.workers.submit(self._send_info, state.conn, rid)

    def _send_info(self, conn, rid):
        if self.packages is None:
            import importlib.metadata  # only here: it costs start-up time and memory in every session

            found = {}
            for dist in importlib.metadata.distributions():
                name = dist.metadata.get("Name") if dist.metadata else None
                if name:
                    found[str(name)[:256]] = str(dist.version)[:256]
            self.packages = [{"name": n, "version": v} for n, v in sorted(found.items(), key=lambda i: i[0].lower())]
        runtimes = [{"name": "python", "version": self.ready["python"]}]
        if self.node_version:
            runtimes.append({"name": "node", "version": self.node_version.lstrip("v")})
        conn.send({
            "type": "info", "id": rid, "agentVersion": AGENT_VERSION, "protocol": PROTOCOL,
            "runtimes": runtimes, "packages": self.packages[:MAX_PACKAGES], "dataDir": self.data.root,
        })

    def op_execute(self, state, rid, frame):
        request = execute_request(frame)
        if rid in state.cancels:
            raise BadRequest("an execution with this id is already running")
        if request["language"] == "javascript" and not self.executor.node:
            raise BadRequest("JavaScript is not available in this session: Node.js is not installed", "UNSUPPORTED")
        cancel = threading.Event()
        state.cancels[rid] = cancel
        self.workers.submit(self._execute, state, rid, request, cancel)

    def _execute(self, state, rid, request, cancel):
        conn = state.conn
        live = LiveOutput(lambda fields: conn.send(dict(fields, id=rid)), self.relay)
        try:
            outcome = self.executor.run(request, cancel, live, lambda: conn.send({"type": "started", "id": rid}))
        except BadRequest as error:
            live.close()
            conn.send(_error(rid, error.code, error.message))
            return
        except Exception as error:  # noqa: BLE001
            live.close()
            self.log("execution failed internally: %r" % error)
            conn.send(_error(rid, "INTERNAL", "internal agent error: %s" % type(error).__name__))
            return
        finally:
            state.cancels.pop(rid, None)
        live.close()  # every output and display frame goes before the result
        conn.send({"type": "result", "id": rid, "outcome": outcome})

    def op_execute_cancel(self, state, rid, frame):
        cancel = state.cancels.get(rid)
        if cancel is not None:
            cancel.set()

    def op_env_set(self, state, rid, frame):
        # Inline on the reader thread: every execute frame after this one sees the variables.
        self.executor.set_session_env(env_field(frame, required=True))
        state.conn.send({"type": "result", "id": rid})

    def op_kernel_restart(self, state, rid, frame):
        language = frame.get("language")
        if language not in ("python", "javascript"):
            raise BadRequest("language must be python or javascript")
        self.workers.submit(self._restart_kernel, state.conn, rid, language)

    def _restart_kernel(self, conn, rid, language):
        try:
            self.executor.restart(language)
        except BadRequest as error:
            conn.send(_error(rid, error.code, error.message))
            return
        except Exception as error:  # noqa: BLE001 - e.g. KernelStartError: report, keep serving
            conn.send(_error(rid, "INTERNAL", str(error)))
            return
        conn.send({"type": "result", "id": rid})

    def op_checkpoint(self, state, rid, frame):
        path = socket_field(frame)
        timeout_s = int_field(frame, "timeoutMs", 1, 86_400_000, 600_000) / 1000.0
        self._session_op(state.conn, rid, "checkpoint", lambda: checkpoint.checkpoint(self, path, timeout_s))

    def op_restore(self, state, rid, frame):
        path, fork = socket_field(frame), bool_field(frame, "fork")
        timeout_s = int_field(frame, "timeoutMs", 1, 86_400_000, 600_000) / 1000.0
        self._session_op(state.conn, rid, "restore", lambda: checkpoint.restore(self, path, fork, timeout_s))

    def op_reseed(self, state, rid, frame):
        self._session_op(state.conn, rid, "reseed", lambda: checkpoint.reseed(self, 60.0) or {})

    def _session_op(self, conn, rid, what, work):
        def run():
            try:
                report = work()
            except (checkpoint.CheckpointError, SessionOpError, OSError) as error:
                conn.send(_error(rid, "INTERNAL", "%s failed: %s" % (what, error)))
                return
            except Exception as error:  # noqa: BLE001 - never take the agent down
                self.log("%s failed internally: %r" % (what, error))
                conn.send(_error(rid, "INTERNAL", "%s failed: %s" % (what, type(error).__name__)))
                return
            conn.send({"type": "result", "id": rid, what: report})

        self.workers.submit(run)

    def op_stat(self, state, rid, frame):
        state.conn.send({"type": "result", "id": rid, "file": self.data.stat(path_field(frame))})

    def op_list(self, state, rid, frame):
        files = self.data.list(path_field(frame), bool_field(frame, "recursive"))
        state.conn.send({"type": "result", "id": rid, "files": files})

    def op_delete(self, state, rid, frame):
        self.data.delete(path_field(frame))
        state.conn.send({"type": "result", "id": rid})

    def op_upload(self, state, rid, frame):
        if rid in state.uploads:
            raise BadRequest("an upload with this id is already in progress")
        if len(state.uploads) >= MAX_TRANSFERS:
            raise BadRequest("too many uploads in progress", "BUSY")
        limit = min(int_field(frame, "maxBytes", 0, 2**53 - 1), self.config.max_upload_bytes)
        size = int_field(frame, "size", 0, 2**53 - 1) if frame.get("size") is not None else None
        state.uploads[rid] = self.data.begin_upload(path_field(frame), limit, size)

    def op_upload_chunk(self, state, rid, frame):
        upload = state.uploads.get(rid)
        if upload is None:
            if rid in state.failed_uploads:
                return  # the host has not seen our error yet; drop the rest quietly
            raise BadRequest("no upload in progress with this id")
        try:
            upload.write(chunk_data(frame))
        except (BadRequest, FileOpError):
            upload.abort()
            del state.uploads[rid]
            state.failed_uploads.append(rid)
            raise

    def op_upload_end(self, state, rid, frame):
        upload = state.uploads.pop(rid, None)
        if upload is None:
            if rid in state.failed_uploads:
                return
            raise BadRequest("no upload in progress with this id")
        state.conn.send({"type": "result", "id": rid, "file": upload.finish()})

    def op_upload_abort(self, state, rid, frame):
        upload = state.uploads.pop(rid, None)
        if upload is not None:
            upload.abort()

    def op_download(self, state, rid, frame):
        if rid in state.downloads:
            raise BadRequest("a download with this id is already in progress")
        if len(state.downloads) >= MAX_TRANSFERS:
            raise BadRequest("too many downloads in progress", "BUSY")
        window = int_field(frame, "window", 1, 64, 16)
        fd, info = self.data.open_read(path_field(frame))
        state.conn.send({"type": "file", "id": rid, "file": info})
        download = Download(state.conn, rid, fd, window, lambda r: state.downloads.pop(r, None))
        state.downloads[rid] = download
        self.workers.submit(download.run)

    def op_download_credit(self, state, rid, frame):
        download = state.downloads.get(rid)
        if download is not None:
            download.credit(int_field(frame, "chunks", 1, 1 << 16))

    def op_download_cancel(self, state, rid, frame):
        download = state.downloads.get(rid)
        if download is not None:
            download.cancel()

    HANDLERS = {
        "hello": op_hello,
        "ping": op_ping,
        "info": op_info,
        "execute": op_execute,
        "execute.cancel": op_execute_cancel,
        "env.set": op_env_set,
        "kernel.restart": op_kernel_restart,
        "checkpoint": op_checkpoint,
        "restore": op_restore,
        "reseed": op_reseed,
        "files.stat": op_stat,
        "files.list": op_list,
        "files.delete": op_delete,
        "files.upload": op_upload,
        "files.upload.chunk": op_upload_chunk,
        "files.upload.end": op_upload_end,
        "files.upload.abort": op_upload_abort,
        "files.download": op_download,
        "files.download.credit": op_download_credit,
        "files.download.cancel": op_download_cancel,
    }


def _error(rid, code, message):
    return {"type": "error", "id": rid, "code": code, "message": str(message)[:16000]}

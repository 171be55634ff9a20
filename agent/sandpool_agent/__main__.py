"""Entry point: `python3 -u agent/sandpool_agent (--stdio | --listen-unix PATH | --device PATH)
[--data-dir DIR] ...` (see agent/PROTOCOL.md)."""

import os
import sys

AGENT_DIR = os.path.dirname(os.path.abspath(__file__))
if AGENT_DIR not in sys.path:
    sys.path.insert(0, AGENT_DIR)

import argparse  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402

DEFAULT_PRELOAD = (
    # Imported into the Python kernel before `ready`, each only if installed, so a Ready session's
    # first `import pandas` is instant. Heavier libraries (scipy, sklearn, seaborn) cost seconds of
    # start-up and tens of MB per idle session for code that may never use them: not preloaded.
    "numpy",
    "pandas",
    "matplotlib",
    "matplotlib.pyplot",
)

LOG_LEVELS = {"debug": 0, "info": 1, "warn": 2, "error": 3}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="sandpool_agent", description="sandpool in-sandbox agent")
    transport = parser.add_mutually_exclusive_group(required=True)
    transport.add_argument("--stdio", action="store_true", help="speak the protocol on stdin/stdout")
    transport.add_argument("--listen-unix", metavar="PATH", help="listen on a unix socket")
    transport.add_argument("--device", metavar="PATH", help="open a character device (virtio-serial port)")
    parser.add_argument("--data-dir", default="/mnt/data")
    parser.add_argument("--preload", default=",".join(DEFAULT_PRELOAD), help="comma-separated modules")
    parser.add_argument("--no-preload", action="store_true")
    parser.add_argument("--interrupt-grace-ms", type=int, default=2000)
    parser.add_argument("--max-upload-bytes", type=int, default=16 << 30)
    parser.add_argument("--python", default=None, help="interpreter for the Python kernel (default: this one)")
    parser.add_argument("--node", default=None, help="node binary for JavaScript (default: node on PATH)")
    parser.add_argument("--node-version", default=None, help=argparse.SUPPRESS)  # known already (zygote)
    parser.add_argument("--log-level", choices=sorted(LOG_LEVELS), default="info")
    args = parser.parse_args(argv)
    args.preload = [] if args.no_preload else [m for m in args.preload.split(",") if m.strip()]
    if not 0 <= args.interrupt_grace_ms <= 600_000:
        parser.error("--interrupt-grace-ms must be between 0 and 600000")
    return args


def make_logger(level):
    threshold = LOG_LEVELS[level]
    lock = threading.Lock()

    def log(message, severity="info"):
        if LOG_LEVELS.get(severity, 1) >= threshold:
            with lock:
                try:
                    sys.stderr.write("[sandpool-agent] %s\n" % message)
                    sys.stderr.flush()
                except (OSError, ValueError):
                    pass

    return log


def run_as_init():
    """As PID 1 (a container without --init, a VM's init), fork the agent and reap every orphan:
    session code that leaves children behind must not fill the process table with zombies."""
    child = os.fork()
    if child == 0:
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: os.kill(child, signum))
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        except InterruptedError:
            continue
        if pid == child:
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.getpid() == 1:
        run_as_init()
    log = make_logger(args.log_level)
    if args.stdio:
        # Frames own fd 1: anything printed by mistake goes to stderr instead of corrupting them.
        protocol_out = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
    else:
        protocol_out = None

    from server import Agent  # noqa: E402 - after sys.path is set up
    import transport  # noqa: E402

    agent = Agent(args, log)
    try:
        agent.start()
    except Exception as error:  # noqa: BLE001
        log("cannot start: %s" % error, "error")
        return 1
    signal.signal(signal.SIGTERM, lambda signum, frame: (agent.executor.shutdown(), os._exit(0)))
    try:
        if args.stdio:
            transport.serve_stdio(agent.handle_connection, protocol_out)
        elif args.listen_unix:
            transport.serve_unix(args.listen_unix, agent.handle_connection, log)
        else:
            transport.serve_device(args.device, agent.handle_connection, log)
    except KeyboardInterrupt:
        pass
    finally:
        agent.executor.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

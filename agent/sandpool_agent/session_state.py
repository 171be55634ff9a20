"""Checkpoint and restore of the Python kernel's session state: the interpreter-level pause.

Loaded by python_kernel.py (not imported by the agent). `checkpoint` writes the user namespace
with dill (functions, classes, lambdas and instances defined in the session travel by value;
modules by name; DataFrames and arrays through pickle protocol 5) plus the process state a cell
can change (working directory, environment, sys.path, the global RNGs) into a FIFO the agent
relays to the host. Whatever cannot be pickled, and every running thread, is named in the report:
nothing is dropped silently. `restore` loads that stream into a fresh kernel's namespace; for a
fork it reseeds the RNGs instead of restoring them, so two forks never draw the same numbers.
"""

import os
import random
import sys
import threading

FORMAT = 1
MAX_LOST = 200
# Names the kernel owns; never saved or overwritten.
RESERVED = frozenset(["__builtins__"])
INITIAL_ENV = dict(os.environ)


class _Sink:
    """A write-only file that counts bytes: the dry run that finds what cannot be pickled."""

    def write(self, data):
        return memoryview(data).nbytes


def _reason(error):
    text = "%s: %s" % (type(error).__name__, error)
    return text[:300]


def _lost(name, kind, reason):
    return {"language": "python", "name": str(name)[:200], "type": str(kind)[:100], "reason": reason}


def _rng_state():
    state = {"random": random.getstate()}
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            state["numpy"] = numpy.random.get_state()
        except Exception:  # noqa: BLE001 - a broken numpy must not stop the pause
            pass
    return state


def _threads(lost):
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.name.startswith("sandpool-"):
            continue
        lost.append(_lost(thread.name, "thread", "running threads are not kept by an interpreter-level pause"))


def checkpoint(ns, path):
    """Write the namespace into `path` (a FIFO the agent reads). Returns the report."""
    import dill  # lazily: after the kernel installed its own __main__, which dill refers functions to

    lost, values = [], {}
    for name, value in list(ns.items()):
        if name in RESERVED:
            continue
        try:
            dill.dump(value, _Sink(), protocol=5)
        except BaseException as error:  # noqa: BLE001 - any failure means "not kept", never a crash
            lost.append(_lost(name, type(value).__name__, _reason(error)))
            continue
        values[name] = value
    _threads(lost)
    env = dict(os.environ)
    state = {
        "format": FORMAT,
        "cwd": os.getcwd(),
        "env": {k: v for k, v in env.items() if INITIAL_ENV.get(k) != v},
        "unset": [k for k in INITIAL_ENV if k not in env],
        "path": list(sys.path),
        "rng": _rng_state(),
    }
    with open(path, "wb") as out:
        dill.dump((state, values), out, protocol=5)
    return {"saved": len(values), "lost": lost[:MAX_LOST], "lostCount": len(lost)}


def _reseed(ns):
    """A fork must not replay its parent's random numbers: reseed the global generators and the
    generator objects bound to top-level names (seeded by the parent, copied with its state)."""
    random.seed()
    numpy = sys.modules.get("numpy")
    generators = [random.Random]
    if numpy is not None:
        numpy.random.seed()
        generators += [numpy.random.Generator, numpy.random.RandomState]
    for value in list(ns.values()):
        try:
            if isinstance(value, random.Random):
                value.seed()
            elif numpy is not None and isinstance(value, numpy.random.RandomState):
                value.seed()
            elif numpy is not None and isinstance(value, numpy.random.Generator):
                value.bit_generator.state = type(value.bit_generator)().state
        except Exception:  # noqa: BLE001, S112 - a user subclass may refuse; the global ones are done
            continue


def restore(ns, path, fork):
    """Load a checkpoint from `path` (a FIFO the agent feeds) into `ns`. Raises on a corrupt stream."""
    import dill

    with open(path, "rb") as source:
        state, values = dill.load(source)
    if not isinstance(state, dict) or state.get("format") != FORMAT or not isinstance(values, dict):
        raise ValueError("not a sandpool Python checkpoint (format %r)" % (state.get("format") if isinstance(state, dict) else None))
    for name, value in values.items():
        if isinstance(name, str) and name not in RESERVED:
            ns[name] = value
    for key, value in state.get("env", {}).items():
        os.environ[key] = value
    for key in state.get("unset", []):
        os.environ.pop(key, None)
    for entry in state.get("path", []):
        if isinstance(entry, str) and entry not in sys.path:
            sys.path.append(entry)
    try:
        os.chdir(state.get("cwd") or ".")
    except OSError:
        pass
    if fork:
        _reseed(ns)
    else:
        rng = state.get("rng", {})
        if "random" in rng:
            random.setstate(rng["random"])
        if "numpy" in rng:
            import numpy

            numpy.random.set_state(rng["numpy"])
    return {"restored": len(values)}


def reseed(ns):
    """For a VM fork (a copied memory image): the same reseeding as a forked restore."""
    _reseed(ns)
    return {}

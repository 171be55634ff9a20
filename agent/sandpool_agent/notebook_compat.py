"""Notebook habits of LLM-written code, in a plain Python kernel (runs in the kernel process).

Azure's sessions run Jupyter kernels, so generated code often contains `!pip install x`,
`%matplotlib inline` or `display(df)`. Those lines are not Python; the kernel rewrites them only
when the cell does not parse as it is, so valid Python is never touched:
- `!cmd` runs `cmd` through the shell (output goes to the cell's stdout/stderr);
- `%pip` / `%conda` run pip with this interpreter; `%matplotlib`, `%config`, `%load_ext` are no-ops;
- any other `%magic` or `%%cell magic` fails with a clear message.
`display(*objs)` is a builtin: figures and images become images of the cell, anything else is
printed as its text repr.
"""

import pprint
import shlex
import subprocess
import sys

NO_OP_MAGICS = ("matplotlib", "config", "load_ext", "reload_ext", "autoreload")


class UsageError(Exception):
    """IPython's name for a magic it cannot run."""


UsageError.__module__ = "builtins"  # tracebacks show `UsageError: ...`, not our module path


def system(command):
    """`!command`: run through /bin/sh with the cell's stdout/stderr (the fds, not sys.stdout)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    subprocess.run(command, shell=True, check=False)


def unsupported(line):
    raise UsageError("IPython magic %r is not supported in this session (plain Python kernel)" % line.strip())


def rewrite(code):
    """The cell with notebook lines turned into calls, or None when there is nothing to rewrite."""
    lines = code.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        return "__sandpool_unsupported__(%r)\n" % lines[0]
    out, changed = [], False
    for line in lines:
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("!"):
            out.append("%s__sandpool_system__(%r)" % (indent, stripped[1:]))
            changed = True
        elif stripped.startswith("%"):
            words = stripped[1:].split(None, 1)
            name = words[0] if words else ""
            rest = words[1] if len(words) > 1 else ""
            if name in NO_OP_MAGICS:
                out.append(indent + "pass")
            elif name in ("pip", "conda"):
                command = "%s -m pip %s" % (shlex.quote(sys.executable), rest)
                out.append("%s__sandpool_system__(%r)" % (indent, command))
            else:
                out.append("%s__sandpool_unsupported__(%r)" % (indent, stripped))
            changed = True
        else:
            out.append(line)
    return "\n".join(out) if changed else None


def make_display(display_module, current_images):
    """The `display` builtin; `current_images()` gives the running cell's image list."""

    def display(*objs, **_kwargs):
        for obj in objs:
            image = display_module.as_image(obj)
            images = current_images()
            if image is not None and images is not None:
                images.append(image)
            else:
                text = obj if isinstance(obj, str) else pprint.pformat(obj, sort_dicts=False)
                print(text)

    return display


def install(builtins_module, display_module, current_images):
    builtins_module.__sandpool_system__ = system
    builtins_module.__sandpool_unsupported__ = unsupported
    if not hasattr(builtins_module, "display"):
        builtins_module.display = make_display(display_module, current_images)

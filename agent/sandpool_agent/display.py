"""Turns a cell's last value and its figures into Azure's `result` and `images` (runs in the kernel).

Loaded by python_kernel.py under the module name `sandpool_agent_display`, so the session cannot
shadow it. matplotlib is never imported from here: figures are only looked for when the session
(or the preload) imported pyplot itself.
"""

import base64
import io
import math
import pprint
import sys

NO_VALUE = object()
MAX_RESULT_BYTES = 1 << 20
MAX_IMAGE_BYTES = 24 << 20
MAX_SAFE_INT = 2**53

# Set by the kernel for the running cell: called by the matplotlib backend's show().
show_hook = None


def _image(png):
    return {"type": "image", "format": "png", "base64_data": base64.b64encode(png).decode("ascii")}


def render_figure(figure):
    buf = io.BytesIO()
    figure.savefig(buf, format="png", bbox_inches="tight")
    return _image(buf.getvalue())


def capture_open_figures(images):
    """Render and close every open pyplot figure (IPython's inline backend does the same per cell)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    try:
        for number in plt.get_fignums():
            figure = plt.figure(number)
            images_rendered.add(id(figure))
            try:
                images.append(render_figure(figure))
            except Exception as error:  # noqa: BLE001 - one broken figure must not lose the cell
                sys.stderr.write("[sandpool: figure %s could not be rendered: %s]\n" % (number, error))
    finally:
        plt.close("all")


images_rendered = set()


def _is_matplotlib(value):
    return (type(value).__module__ or "").startswith("matplotlib")


def _is_artifact(value):
    """The value of `plt.plot(...)`, `plt.hist(...)`…: noise next to a figure, as in a notebook."""
    if _is_matplotlib(value):
        return True
    if isinstance(value, (list, tuple)) and value:
        return any(_is_matplotlib(item) for item in value[:100])
    return False


def as_image(value):
    """An image for `display(value)`: a matplotlib figure (rendered and closed, so it is not shown
    again at the end of the cell) or an object with `_repr_png_` (PIL); None for anything else."""
    figure_cls = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
    if figure_cls is not None and isinstance(value, figure_cls):
        image = render_figure(value)
        images_rendered.add(id(value))
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            plt.close(value)
        return image
    if value is None or isinstance(value, type) or _is_matplotlib(value):
        return None
    repr_png = getattr(value, "_repr_png_", None)
    if callable(repr_png):
        png = repr_png()
        if isinstance(png, (bytes, bytearray)):
            return _image(bytes(png))
    return None


def _cap_text(text):
    data = text.encode("utf-8", "replace")
    if len(data) <= MAX_RESULT_BYTES:
        return text
    return data[:MAX_RESULT_BYTES].decode("utf-8", "ignore") + "\n[sandpool: result truncated]"


def to_json_value(value):
    """Azure's result for a non-image value: JSON primitives as JSON, anything else as its text repr."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return value
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        item = value.item()  # numpy scalars behave like the Python numbers they hold
        if isinstance(item, (bool, int, float)):
            value = item
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value) if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else _cap_text(repr(value))
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return _cap_text(str(value))
    return _cap_text(pprint.pformat(value, sort_dicts=False))


def _limit_images(images):
    kept, total, dropped = [], 0, 0
    for image in images:
        size = len(image["base64_data"])
        if total + size > MAX_IMAGE_BYTES:
            dropped += 1
            continue
        total += size
        kept.append(image)
    note = "[sandpool: %d image(s) dropped: over %d bytes of image data]\n" % (dropped, MAX_IMAGE_BYTES) if dropped else ""
    return kept, note


def finish(value, images, figures_only=False):
    """(result, images, stderr note) for a finished cell; figures left open are rendered and closed."""
    try:
        capture_open_figures(images)
        if figures_only:
            kept, note = _limit_images(images)
            return "", kept, note
        value_image = None
        figure_cls = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
        if figure_cls is not None and isinstance(value, figure_cls):
            if id(value) not in images_rendered:
                value_image = render_figure(value)
        elif value is not NO_VALUE and value is not None and not isinstance(value, type):
            repr_png = getattr(value, "_repr_png_", None)
            if callable(repr_png) and not _is_matplotlib(value):
                png = repr_png()
                if isinstance(png, (bytes, bytearray)):
                    value_image = _image(bytes(png))
        if value_image is not None:
            images.append(value_image)
        kept, note = _limit_images(images)
        shows_figure = value_image is not None or (figure_cls is not None and isinstance(value, figure_cls))
        if kept and (shows_figure or value is NO_VALUE or value is None or _is_artifact(value)):
            return kept[-1], kept[:-1], note
        return to_json_value(None if value is NO_VALUE else value), kept, note
    finally:
        images_rendered.clear()

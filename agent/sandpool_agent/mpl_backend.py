"""matplotlib backend `module://sandpool_mpl_backend`: Agg rendering, and `plt.show()` hands the
open figures to the kernel as images (like IPython's inline backend) instead of warning that Agg
is non-interactive. Imported by matplotlib only, through the kernel's import hook."""

import sys

from matplotlib.backend_bases import FigureManagerBase, _Backend
from matplotlib.backends.backend_agg import FigureCanvasAgg


@_Backend.export
class _BackendSandpool(_Backend):
    FigureCanvas = FigureCanvasAgg
    FigureManager = FigureManagerBase

    @staticmethod
    def show(*args, **kwargs):
        display = sys.modules.get("sandpool_agent_display")
        hook = getattr(display, "show_hook", None)
        if hook is not None:
            hook()

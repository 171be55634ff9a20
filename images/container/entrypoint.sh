#!/bin/sh
# Seed matplotlib's font cache (built into the image) into the writable MPLCONFIGDIR: matplotlib
# ignores a cache directory it cannot write to and would rebuild the cache in every session.
mkdir -p "$MPLCONFIGDIR" && cp /home/sandbox/.cache/matplotlib/fontlist-*.json "$MPLCONFIGDIR/" 2>/dev/null
exec python3 -u /opt/sandpool/agent/sandpool_agent "$@"

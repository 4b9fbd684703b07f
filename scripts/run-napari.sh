#!/usr/bin/env bash
# Set up (see setup.sh) and launch napari with the napari-deeper widgets docked and a sample open.
# With no display, say so and run the same workflow headless under a virtual X server, writing
# the results and a screenshot to ./napari-deeper-demo (or the folder given as $1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] || [ "$(uname)" = Darwin ]; then
  exec "$NAPARI_DEEPER_PYTHON" -m napari_deeper._widgets.workflow
fi
out="${1:-$PWD/napari-deeper-demo}"
echo "No display found (DISPLAY is not set): running the same workflow headless instead."
echo "Results and a screenshot go to $out"
export QT_QPA_PLATFORM=xcb
exec xvfb-run -a -s "-screen 0 1600x1000x24" "$NAPARI_DEEPER_PYTHON" -m napari_deeper._widgets.workflow --headless --out "$out"

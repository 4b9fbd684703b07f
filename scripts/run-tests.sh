#!/usr/bin/env bash
# Set up (see setup.sh) and run the whole test suite under a virtual X display.
# Extra arguments go to pytest, e.g.  bash scripts/run-tests.sh -k unmix -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$root/scripts/setup.sh"
cd "$root"
export QT_QPA_PLATFORM=xcb MPLBACKEND=Agg PYTHONUNBUFFERED=1
if [ -z "${DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" "$NAPARI_DEEPER_PYTHON" -m pytest "$@"
fi
exec "$NAPARI_DEEPER_PYTHON" -m pytest "$@"

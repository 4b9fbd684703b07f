#!/usr/bin/env bash
# Set up everything napari-deeper needs on a fresh machine, idempotently:
# a virtual environment in .venv, the CPU build of torch (a GPU user can bring a CUDA build),
# the package (editable) with its test extra and PyQt6, and on Debian/Ubuntu as root the
# virtual X server and GL libraries that napari needs. Sourced by run-napari.sh and run-tests.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${NAPARI_DEEPER_VENV:-$root/.venv}"
python="${PYTHON:-python3}"

# On Debian/Ubuntu: the virtual X server for the tests, OpenGL for napari's canvas and the xcb
# helper libraries that Qt's X11 platform plugin loads.
system_packages=(
  xvfb xauth libgl1 libegl1 libgl1-mesa-dri libfontconfig1 libdbus-1-3 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-shape0 libxcb-xinerama0 libxcb-xkb1
)
if command -v dpkg-query >/dev/null 2>&1; then
  need_apt=()
  for package in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$package")
  done
  if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "setup: installing system packages: ${need_apt[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
      echo "setup: please install these system packages first: sudo apt-get install ${need_apt[*]}" >&2
    fi
  fi
elif ! command -v Xvfb >/dev/null 2>&1; then
  echo "setup: Xvfb not found; the tests need it (or a display) - install it with your package manager" >&2
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
if ! "$venv/bin/python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch 2.13.0 (CPU build)"
  "${pip[@]}" torch==2.13.0
fi
stamp="$venv/.napari-deeper-installed"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  echo "setup: installing napari-deeper with its test extra"
  "${pip[@]}" -e "$root[testing]"
  touch "$stamp"
fi
export NAPARI_DEEPER_PYTHON="$venv/bin/python"

"""What every benchmark script shares: the machine description and writing its docs section."""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
from pathlib import Path

import numpy as np

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = "# Benchmarks\n\nEvery number here is measured by a script in `benchmarks/`.\n"


def machine() -> str:
    """CPU model, cores, load, library versions and date: the context every table needs."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = re.search(r"Model name:\s*(.+)", lscpu).group(1).strip()
    except (OSError, subprocess.CalledProcessError, AttributeError):
        model = platform.processor() or platform.machine()
    import scipy
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{model}, {os.cpu_count()} CPU cores (load average {load} at the end of the run), {gpu}, "
        f"Python {platform.python_version()}, NumPy {np.__version__}, SciPy {scipy.__version__}, "
        f"torch {torch.__version__}, {datetime.date.today().isoformat()}"
    )


def write_section(section: str, text: str) -> None:
    """Replace the ``<!-- bench:section -->`` block of docs/benchmarks.md (append it if new)."""
    start, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    document = DOCS.read_text(encoding="utf-8") if DOCS.exists() else HEADER
    block = f"{start}\n{text.strip()}\n{end}"
    if start in document and end in document:
        before, rest = document.split(start, 1)
        document = before + block + rest.split(end, 1)[1]
    else:
        document = document.rstrip("\n") + "\n\n" + block + "\n"
    DOCS.write_text(document, encoding="utf-8")

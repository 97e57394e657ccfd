"""What machine a benchmark ran on, for the figures it prints (`python bench/X.py` puts bench/ on sys.path)."""
import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform knows."""
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """'2 CPUs, AMD EPYC, CPython 3.11.7'."""
    return f"{os.cpu_count()} CPUs, {cpu_model()}, {platform.python_implementation()} {platform.python_version()}"

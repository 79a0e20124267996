"""What a stage holds in memory: its peak resident set, and the bytes of the weights it loads.

Peak RSS is the high-water mark of this process's own address space (VmHWM in /proc/self/status),
not getrusage's ru_maxrss: Linux carries a parent's RSS into ru_maxrss when it spawns the child with
vfork/posix_spawn (as Python's subprocess does), so a 13 MiB child of a 600 MiB Python reported
613 MiB there and 13 MiB in VmHWM (measured). Elsewhere ru_maxrss is the only figure there is.

A model's weights' bytes are the bytes of its files, the graph file (with any weights stored in it)
and its external data files: what the runtime reads and keeps, within the graph's own few KB-MB.
"""
from __future__ import annotations

import platform
import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_kib(key: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])  # "VmHWM:   123456 kB"
    return None


def peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (each stage is a fresh process: of this stage)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if platform.system() == "Darwin" else peak * 1024)  # macOS: bytes; others: KiB


def rss_bytes() -> int:
    """Resident memory of this process now."""
    import psutil

    return int(psutil.Process().memory_info().rss)


def weights_bytes(files: list[Path]) -> int:
    """Bytes of a model's files (runtimes.Runner.files: graph file, then external data files)."""
    return sum(Path(f).stat().st_size for f in files)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"

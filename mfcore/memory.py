r"""Memory of the machine and the guard that refuses a computation before it allocates.

:func:`check_memory` compares an estimate of a computation's peak (bytes, from
:func:`mfcore.runspec.memory_estimate` or :func:`mfcore.finite.evaluation_memory_bytes`),
multiplied by :data:`MEMORY_MARGIN`, with the machine's **total** memory (a run that can never fit)
and with its **available** memory (a run that does not fit now). The available memory is sampled
a few times over about a second before a refusal, so that another job holding memory for a
moment does not refuse the run.

Used by :mod:`mfcore.finite`, :mod:`mfcore.moments`, :mod:`mfcore.simulate` and the command line.
"""
from __future__ import annotations

import os
import time

#: Factor applied to every estimate before the comparison (the estimates of
#: :func:`mfcore.runspec.memory_estimate` are calibrated on measured peaks within about 15%).
MEMORY_MARGIN = 1.25
#: Samples of the available memory taken before a refusal, and the pause between them (s).
AVAILABLE_SAMPLES = 4
SAMPLE_PAUSE = 0.25


def _meminfo(field: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit() -> int | None:
    """Memory limit of this process's cgroup (v2 ``memory.max`` or v1 ``limit_in_bytes``), if any."""
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:
            return int(text)
    return None


def total_memory_bytes() -> int:
    """Physical memory of the machine (``MemTotal``), or the cgroup limit if smaller."""
    total = _meminfo("MemTotal")
    if total is None:
        try:
            total = int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
            total = 2**62
    limit = _cgroup_limit()
    return min(total, limit) if limit is not None else total


def available_memory_bytes() -> int:
    """Memory the machine can still give this process: ``MemAvailable`` of ``/proc/meminfo``
    (Linux), else ``os.sysconf`` available pages times page size, else a very large number."""
    avail = _meminfo("MemAvailable")
    if avail is not None:
        return avail
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**62


def human(n: int) -> str:
    """Bytes as ``"1.5 GiB"`` or ``"12.0 MiB"`` (EiB, PiB, TiB for absurd sizes)."""
    for unit, power in (("EiB", 60), ("PiB", 50), ("TiB", 40), ("GiB", 30)):
        if n >= 2**power:
            return f"{n / 2**power:,.1f} {unit}"
    return f"{n / 2**20:,.1f} MiB"


def check_memory(estimate: int, what: str, dtype: str | None = None, available=None, total=None,
                 margin: float = MEMORY_MARGIN) -> int:
    """Raise a ValueError if ``estimate`` bytes (times ``margin``) cannot fit, before allocating.

    Parameters
    ----------
    estimate : int
        Estimated peak of the computation, in bytes.
    what : str
        Description of the computation for the message.
    dtype : str, optional
        Precision of the finite network; float32 is suggested only when it is not already used.
    available, total : callable, optional
        Functions returning the available and the total memory (default: this module's).
    margin : float
        Factor applied to ``estimate``.

    Returns
    -------
    int
        The bytes compared (estimate times margin).
    """
    available = available_memory_bytes if available is None else available
    total = total_memory_bytes if total is None else total
    need = int(estimate * margin)
    hint = "reduce the width, the dimension, the nodes, the records or the chunk"
    if dtype is not None and str(dtype) not in ("float32", "<class 'numpy.float32'>"):
        hint += ", or use dtype float32"
    machine = total()
    if need > machine:
        raise ValueError(
            f"{what} needs about {human(need)} of memory but only {human(machine)} is installed on "
            f"this machine (total memory); {hint}"
        )
    free = available()
    for _ in range(AVAILABLE_SAMPLES - 1):
        if need <= free:
            break
        time.sleep(SAMPLE_PAUSE)  # another job may hold the memory for a moment
        free = max(free, available())
    if need > free:
        raise ValueError(
            f"{what} needs about {human(need)} of memory but only {human(free)} is available "
            f"(of {human(machine)} in total: other processes hold the rest); wait for them to "
            f"finish, or {hint}"
        )
    return need

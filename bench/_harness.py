"""Shared pieces of the benchmarks: a throwaway database, timing, and the TARGET line.

Every benchmark runs as ``.venv/bin/python bench/NAME.py`` (``--quick`` for a small size) and ends
with one line per target, as DESIGN.md specifies:
``TARGET <metric> <measured> <unit> <op> <goal> MET|MISSED``.
"""

from __future__ import annotations

import contextlib
import operator
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def setup_django(settings_module: str = "promo_portal.settings.test") -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django

    django.setup()


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """Create, migrate and finally drop a test database (test_<name>), like the test runner."""
    from django.db import connection
    from django.test.utils import setup_test_environment, teardown_test_environment

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        yield name
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


def median_of(repeats: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    """Run ``measure`` several times (machines are noisy) and return the median and all runs."""
    runs = [measure() for _ in range(repeats)]
    return statistics.median(runs), runs


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self.start


def own_peak_rss_mib() -> float:
    """This process's peak RSS in MiB. Not ru_maxrss alone: a child started by subprocess
    (vfork + exec) inherits its parent's high-water mark there; VmHWM (Linux) belongs to its
    own address space."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def target(metric: str, measured: float, unit: str, op: str, goal: float) -> bool:
    met = _OPS[op](measured, goal)
    shown = f"{measured:.3g}" if abs(measured) < 100 else f"{measured:.0f}"
    print(f"TARGET {metric} {shown} {unit} {op} {goal:g} {'MET' if met else 'MISSED'}")
    return met

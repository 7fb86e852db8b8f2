"""Ground-truth simulator: simulate a merchant and write its CSVs, at scale.

Simulates 1M customers (100k with ``--quick``) with ``modeling.simulation.simulate_merchant`` and
writes customers.csv, events.csv, treatments.csv, coupon_types.csv and ground_truth.npz with
``write_csvs``. Prints customers/s, events generated, rows/s written, file sizes and peak memory
(ru_maxrss), beside a raw baseline: one ``np.argsort`` over as many int64 keys as there are events
(the single sort the simulator cannot avoid), so the ratio says what the behaviour model costs.

Target (issue brief): 1M customers simulate in at most 300 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _harness import Timer, median_of, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100k customers, under a minute")
    parser.add_argument("--customers", type=int, default=None)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=None, help="simulate runs (median)")
    parser.add_argument("--no-write", action="store_true", help="skip write_csvs")
    args = parser.parse_args()
    n = args.customers or (100_000 if args.quick else 1_000_000)
    repeats = args.repeats or (3 if args.quick else 1)

    from modeling.simulation import simulate_merchant, write_csvs

    print(f"simulate_merchant: {n:,} customers, seed {args.seed}, {repeats} run(s)")
    sims = []

    def simulate() -> float:
        sims.clear()  # keep at most one merchant alive: peak memory is one merchant's
        with Timer() as t:
            sims.append(simulate_merchant(n, args.seed))
        return t.seconds

    seconds, runs = median_of(repeats, simulate)
    peak_simulate_mib = _peak_mib()
    sim = sims[0]
    n_events = sim.n_events
    print(f"  runs: {', '.join(f'{r:.2f} s' for r in runs)}; median {seconds:.2f} s")
    print(f"  customers/s: {n / seconds:,.0f}")
    print(f"  events generated: {n_events:,} ({n_events / n:.1f} per customer)")
    print(f"  events/s: {n_events / seconds:,.0f}")
    print(f"  treatments: {len(sim.treatments['arm']):,}")
    p = sim.truth.p_convert
    print(
        "  mean true P(convert) per arm: "
        + ", ".join(f"{a} {p[:, i].mean():.4f}" for i, a in enumerate(sim.truth.arms))
    )
    in_memory = sum(
        a.nbytes for d in (sim.events, sim.customers, sim.treatments) for a in d.values()
    )
    in_memory += sum(
        a.nbytes for a in (sim.truth.p_convert, sim.truth.order_value, sim.truth.discount_cost)
    )
    print(f"  merchant arrays in memory: {in_memory / 2**20:,.0f} MiB")
    print(f"  peak memory after simulate (ru_maxrss): {peak_simulate_mib:,.0f} MiB")

    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**62, n_events)
    with Timer() as sort_t:
        np.argsort(keys, kind="stable")
    del keys
    print(
        f"  baseline: one stable argsort of {n_events:,} int64 keys {sort_t.seconds:.2f} s; "
        f"simulate = {seconds / sort_t.seconds:.1f}x that"
    )

    if not args.no_write:
        with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp, Timer() as write_t:
            paths = write_csvs(sim, Path(tmp))
            sizes = {name: path.stat().st_size for name, path in paths.items()}
        rows = n + n_events + len(sim.treatments["arm"])
        print(f"write_csvs: {write_t.seconds:.2f} s, {rows / write_t.seconds:,.0f} rows/s")
        for name, size in sizes.items():
            print(f"  {name}: {size / 2**20:,.1f} MiB")

    print(f"peak memory, whole run (ru_maxrss): {_peak_mib():,.0f} MiB")
    scale = 1_000_000 / n
    if n != 1_000_000:
        print(f"  (target is for 1M customers: scaling {seconds:.2f} s by {scale:g} linearly)")
    target("simulate_1m_customers_s", seconds * scale, "s", "<=", 300)


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.1f} s")

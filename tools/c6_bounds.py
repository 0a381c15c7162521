"""Run the stored grid of gap closures of the chapter on the gap equation (writes sweeps/paper/c6_bounds.nc).

    python -m tools.c6_bounds                 # the stored grid (hours on 2 cores), resumable
    python -m tools.c6_bounds --out x.nc --dims 16 --widths 256 --seeds 0   # a small grid

Each finished run is cached under .mfcore-cache/c6/ (an interrupted grid resumes); the result carries
the provenance of the call (git commit and dirty flag, machine, date) and each run's wall time.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: the stored grid: (d, m) pairs, crossed with seeds 0, 1, 2. (16, 4096) and (64, 1024) were in the first
#: design and dropped before any result of the grid was read: on the shared 2-core machine one run at
#: d = 16, m = 4096 took over 20 minutes (the observer's twin pass is O(m^2 d) per step).
STORED_PAIRS = [(16, 256), (16, 1024), (32, 256), (32, 1024), (64, 256)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.c6_bounds", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="sweeps/paper/c6_bounds.nc")
    p.add_argument("--dims", type=int, nargs="*", default=None, help="dimensions (with --widths: a full grid)")
    p.add_argument("--widths", type=int, nargs="*", default=None)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--step", type=float, default=0.2)
    p.add_argument("--nodes", type=int, default=4096)
    p.add_argument("--records", type=int, default=150)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    a = p.parse_args(argv)
    from mfcore.gapgrid import run_grid
    from mfcore.results import save_dataset

    out = Path(a.out)
    if out.exists() and not a.overwrite:
        print(f"error: {out} exists (use --overwrite)", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"error: folder {out.parent} does not exist", file=sys.stderr)
        return 2
    pairs = None if (a.dims and a.widths) else STORED_PAIRS
    ds = run_grid(a.dims or [], a.widths or [], a.seeds, step=a.step, nodes=a.nodes, records=a.records,
                  pairs=pairs)
    save_dataset(ds, out)
    print(f"wrote {out}: {ds.sizes['run']} runs, {float(ds.wall_time_s.sum()) / 60:.1f} min of run time")
    return 0


if __name__ == "__main__":
    sys.exit(main())

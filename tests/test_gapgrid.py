"""The stored grid of gap closures (sweeps/paper/c6_bounds.nc) against a recomputation of one run.

The cheapest run (d = 16, m = 256, seed 0) is recomputed from the file's attributes with
:func:`mfcore.gapgrid.closure_run` (float64 throughout) and compared at every recorded time: the
measured mean gap and every closure's log10 mean. The finite network of the closure runs is float64,
so another machine's rounding moves them by far less than the tolerances below (relative 1e-6 on the
gap, 1e-6 in log10 on the closures, which differ from the gap by up to 10^240).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import mfcore
from mfcore.gap import MeanFieldGapObserver
from mfcore.gapgrid import CLOSURE_KIND, closure_run

GRID = Path(__file__).resolve().parent.parent / "sweeps" / "paper" / "c6_bounds.nc"


@pytest.mark.skipif(not GRID.is_file(), reason="stored closure grid absent")
def test_closure_grid_is_reproducible():
    ds = mfcore.load_dataset(GRID)
    assert ds.attrs["mfcore_kind"] == CLOSURE_KIND
    i = int(np.flatnonzero((ds.dim.values == 16) & (ds.width.values == 256) & (ds.seed.values == 0))[0])
    run = ds.isel(run=i)
    fresh = closure_run(16, 256, 0, step=float(ds.attrs["step"]), nodes=int(ds.attrs["nodes"]),
                        records=int(ds.attrs["records"]), activation=str(ds.attrs["activation"]),
                        horizon=float(run.horizon))
    n = fresh.sizes["rec"]
    np.testing.assert_allclose(run.t.values[:n], fresh.t.values, rtol=1e-12)
    np.testing.assert_allclose(run.omega.values[:n], fresh.omega.values, rtol=1e-6)
    for v in MeanFieldGapObserver.VARIANTS:
        np.testing.assert_allclose(run[f"{v}_log10"].values[:n], fresh[f"{v}_log10"].values, atol=1e-6,
                                   err_msg=v)
        assert float(run[f"min_log10_{v}"]) == pytest.approx(fresh.attrs[f"min_log10_{v}"], abs=1e-6)


def test_closure_run_refuses_bad_input():
    with pytest.raises(ValueError, match="dim"):
        closure_run(2, 64, 0)
    with pytest.raises(ValueError, match="width"):
        closure_run(8, 1, 0)

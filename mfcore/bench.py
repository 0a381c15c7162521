r"""Benchmarks of the simulators: ``mfcore bench --out FILE.json [--quick]``.

One run measures, on the current machine:

``finite_step``
    One finite-width evaluation (:func:`mfcore.finite.evaluate`: velocity only, and velocity + loss)
    against the time of its two matrix products :math:`G=WW^\top` and :math:`K'(G)W`, computed in
    the same chunked way (rows of :math:`G` per block) and unchunked; ratio = evaluation / products.
    Also float32: time and the velocity error :math:`\max|v_{32}-v_{64}|/\max|v_{64}|`; and the
    evaluation time against the chunk size at one width.
``routes``
    The two exact routes of the finite step (:func:`mfcore.finite.evaluate` with
    ``evaluation="gram"``, ``"moments"``, ``"auto"``) at :math:`d\in\{16,32,64\}` and
    :math:`m` from 4096 to 131072 (float32, velocity + loss), with the unfused numpy Gram route as
    the baseline, and the targets (moments :math:`\ge20\times` at :math:`d=16, m=32768`,
    :math:`\ge4\times` at :math:`d=32`; auto within :math:`1.2\times` of the better route; one
    evaluation at :math:`d=16, m=131072` within 2 s). The load average (1, 5, 15 min) is
    recorded at the start and the end.
``meanfield_step``
    One step of the exact limit with :math:`N=10^5` quantile nodes: building the
    :class:`~mfcore.meanfield.OverlapField`, the speed at every node, the 1-D projected step.
``flow_vs_pgd``
    The limit up to :math:`T=d^{(k-2)/2}` by adaptive gradient flow and by fixed-step projected GD,
    each at the cheapest setting (loosest ``rtol`` / largest step :math:`\eta=T/2^j`) whose loss
    curve is within a stated accuracy of a converged reference (DOP853, ``rtol=1e-10``): velocity
    evaluations and wall time. PGD is first order (error :math:`\propto\eta`, checked on the
    measured sequence); where its cost at a stricter accuracy would exceed the time budget it is
    extrapolated from the last measured step and flagged ``"extrapolated": true``.
``sampled_vs_population``
    The authors' protocol estimates the same velocity from a minibatch. Relative error of the
    minibatch velocity :math:`\|P_w(-g_B)-v\|/\|v\|` against the batch size :math:`B` (fresh
    samples), fitted as :math:`C/\sqrt B`; time for a minibatch gradient of a given accuracy
    against one exact evaluation.

Timings are medians of repeats of :func:`time.perf_counter` intervals; the machine (CPU count,
load average, numpy, BLAS) is recorded with them. Numbers from a loaded machine are noisy.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from datetime import datetime, timezone

import numpy as np

#: Accuracy of the flow-vs-PGD comparison: max over 16 equispaced times of |L - L_ref| / L_ref(0).
FLOW_TOLERANCES = (1e-3, 1e-4)


def _timings(func, repeats: int, min_time: float = 0.0):
    """Run ``func()`` ``repeats`` times (more, up to 50, until ``min_time`` s): (median, min, last result)."""
    times = []
    result = None
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_time and len(times) < 50):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(np.min(times)), result


def _median_time(func, repeats: int, min_time: float = 0.0) -> float:
    """Median wall time of ``func()`` over ``repeats`` calls (at least until ``min_time`` seconds)."""
    return _timings(func, repeats, min_time)[0]


def tune_malloc() -> dict:
    """Keep freed memory in the process (glibc ``mallopt``): no page faults on reused temporaries.

    numpy allocates large temporaries with ``mmap`` and returns them to the OS on free, so every
    evaluation re-faults its buffers. On virtual machines where a page fault costs ~10 us this
    can dominate a step (measured by :func:`page_fault_cost`). Raising glibc's mmap and trim
    thresholds to 1 GiB makes freed blocks reusable. Returns what was done (no-op off glibc).
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        ok = False
    return {"applied": ok, "M_MMAP_THRESHOLD": 1 << 30, "M_TRIM_THRESHOLD": 1 << 30}


def page_fault_cost(mbytes: int = 4) -> dict:
    """Microseconds per 4 KiB page for two fresh ``mbytes`` arrays alive at once vs refilling them.

    (The pattern of a numpy temporary-heavy step: with glibc defaults both blocks are mmapped
    and returned to the OS at every call.)
    """
    n = mbytes * (1 << 20) // 8

    def fresh():
        a = np.ones(n)
        b = np.ones(n)
        return a, b

    bufs = (np.zeros(n), np.zeros(n))

    def reuse():
        bufs[0].fill(1.0)
        bufs[1].fill(1.0)

    pages = 2 * mbytes * 256
    return {"fresh_us_per_page": 1e6 * _median_time(fresh, 21) / pages,
            "reuse_us_per_page": 1e6 * _median_time(reuse, 21) / pages}


def machine_info() -> dict:
    """CPU count, load average, Python/numpy versions and the BLAS numpy was built with."""
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "blas_threads_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
                             if k in os.environ},
    }
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {k: blas.get(k) for k in ("name", "version", "openblas configuration") if k in blas}
    except Exception:  # older numpy
        info["blas"] = None
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "num_threads", "version")}
                               for p in threadpool_info()]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    return info


# ---------------------------------------------------------------------------------------------
# (a) finite-width step
# ---------------------------------------------------------------------------------------------
def _products(W, chunk):
    """The two matrix products of one evaluation, chunked like :func:`mfcore.finite.evaluate`."""
    m = W.shape[0]
    buf = np.empty((min(chunk, m), m), dtype=W.dtype)
    out = np.empty_like(W)
    for start in range(0, m, chunk):
        stop = min(start + chunk, m)
        G = np.matmul(W[start:stop], W.T, out=buf[: stop - start])
        np.matmul(G, W, out=out[start:stop])
    return out


def bench_finite_step(widths, dims_at, dim=32, width_for_dims=4096, activation="he4", repeats=3,
                      chunk_scan_width=None, chunk_scan=(64, 128, 256, 512, 1024, 2048), full_limit=8192) -> dict:
    from .finite import DEFAULT_CHUNK, evaluate
    from .problem import Problem
    from .sphere import nested_initialisation

    rows = []
    cases = [(m, dim) for m in widths] + [(width_for_dims, d) for d in dims_at if d != dim]
    for m, d in cases:
        problem = Problem(d, activation)
        W = nested_initialisation(m, d, seed=0)
        W32 = W.astype(np.float32)
        chunk = DEFAULT_CHUNK
        r = repeats if m <= 4096 else max(2, repeats - 2)
        if m <= 2048:
            r = 3 * repeats
        # paired design: every repeat times all variants back to back, and the ratio is taken per
        # repeat, so slow drifts of the machine's load cancel; the reported ratio is the median
        samples = {k: [] for k in ("prod", "full", "vel", "both", "prod32", "vel32")}
        funcs = {
            "prod": lambda: _products(W, chunk),
            "full": (lambda: np.matmul(np.matmul(W, W.T), W)) if m <= full_limit else None,
            "vel": lambda: evaluate(W, problem, chunk, with_kernel_mean=False, evaluation="gram"),
            "both": lambda: evaluate(W, problem, chunk, evaluation="gram"),
            "prod32": lambda: _products(W32, chunk),
            "vel32": lambda: evaluate(W32, problem, chunk, with_kernel_mean=False, evaluation="gram"),
        }
        last = {}
        for _ in range(r):
            for key, func in funcs.items():
                if func is None:
                    continue
                t0 = time.perf_counter()
                last[key] = func()
                samples[key].append(time.perf_counter() - t0)
        S = {k: np.array(v) for k, v in samples.items() if v}
        best = np.minimum(S["prod"], S["full"]) if "full" in S else S["prod"]
        v64, v32 = last["vel"].velocity, last["vel32"].velocity
        rows.append({
            "m": m, "d": d, "chunk": chunk, "repeats": r,
            "t_products_chunked_s": float(np.median(S["prod"])),
            "t_products_full_s": float(np.median(S["full"])) if "full" in S else None,
            "t_velocity_s": float(np.median(S["vel"])),
            "t_velocity_and_loss_s": float(np.median(S["both"])),
            "ratio_velocity": float(np.median(S["vel"] / best)),
            "ratio_velocity_and_loss": float(np.median(S["both"] / best)),
            "ratio_velocity_spread": [float(np.min(S["vel"] / best)), float(np.max(S["vel"] / best))],
            "t_velocity_min_s": float(np.min(S["vel"])),
            "t_products_min_s": float(np.min(best)),
            "gflops_products": 4.0 * m * m * d / float(np.median(best)) / 1e9,
            "t_velocity_float32_s": float(np.median(S["vel32"])),
            "t_products_float32_s": float(np.median(S["prod32"])),
            "ratio_velocity_float32": float(np.median(S["vel32"] / S["prod32"])),
            "speedup_float32": float(np.median(S["vel"] / S["vel32"])),
            "float32_velocity_max_rel_error": float(np.max(np.abs(v32 - v64)) / np.max(np.abs(v64))),
        })
    out = {
        "activation": activation,
        "route": "gram (fused element-wise pass)" if _fused_available() else "gram (numpy passes)",
        "definition": "ratio = time of one finite.evaluate(evaluation='gram') / time of the two products W[rows] @ W.T and "
                      "G @ W (the faster of the same chunking and unchunked), timed back to back in each "
                      "repeat; median over repeats of the per-repeat ratio (spread = min, max); times are "
                      "medians; float32 ratio against float32 products",
        "rows": rows,
        "max_ratio_velocity": max(r["ratio_velocity"] for r in rows),
        "max_ratio_velocity_and_loss": max(r["ratio_velocity_and_loss"] for r in rows),
    }
    out["velocity_within_2x"] = out["max_ratio_velocity"] <= 2.0
    out["velocity_within_1_5x"] = out["max_ratio_velocity"] <= 1.5
    out["velocity_and_loss_within_1_5x"] = out["max_ratio_velocity_and_loss"] <= 1.5
    if chunk_scan_width:
        problem = Problem(dim, activation)
        W = nested_initialisation(chunk_scan_width, dim, seed=0)
        scan = []
        for c in chunk_scan:
            t_v = _timings(lambda: evaluate(W, problem, c, with_kernel_mean=False, evaluation="gram"),
                           repeats, 0.2)[1]
            t_p = _timings(lambda: _products(W, c), repeats, 0.2)[1]
            scan.append({"chunk": c, "t_velocity_s": t_v, "t_products_chunked_s": t_p})
        out["chunk_scan"] = {"m": chunk_scan_width, "d": dim, "rows": scan}
    return out


def _fused_available() -> bool:
    from . import finite

    return finite._numba is not None


# ---------------------------------------------------------------------------------------------
# (a') exact routes of the finite step: Gram vs moments vs auto
# ---------------------------------------------------------------------------------------------
def bench_routes(dims=(16, 32, 64), widths=(4096, 8192, 16384, 32768, 65536, 131072), activation="he4",
                 dtype="float32", repeats=2, budget_s=40.0, baseline_max_width=32768) -> dict:
    r"""Seconds per evaluation (velocity + loss) of the Gram route, the moment route and ``auto``.

    For every :math:`d` the widths are run in increasing order; a route whose predicted time
    (the last measured time scaled by :math:`m^2` for Gram, :math:`m` for moments) exceeds
    ``budget_s`` is not run but extrapolated and flagged (``"<route>_extrapolated": true``); a
    width whose buffers do not fit the available memory is skipped. ``t_gram_numpy_s`` is the Gram
    route with the unfused numpy element-wise passes (the route before the fused pass), measured
    up to ``baseline_max_width``. Times are the minimum over ``repeats`` calls.
    """
    from . import finite, moments
    from .problem import Problem
    from .sphere import nested_initialisation

    np_dtype = {"float32": np.float32, "float64": np.float64}[dtype]
    rows = []
    for d in dims:
        problem = Problem(d, activation)
        try:
            pl = moments.plan(problem.kernel, d)
        except ValueError:
            pl = None
        last = {}
        for m in widths:
            row = {"d": d, "m": m, "dtype": dtype, "n_features": None if pl is None else pl.n_features}
            need = max(finite.evaluation_memory_bytes(m, problem, r, finite.DEFAULT_CHUNK, np_dtype)
                       for r in ("gram", "moments") if r == "gram" or pl is not None)
            if need + m * d * 16 > finite.available_memory_bytes():
                row["skipped"] = "memory"
                rows.append(row)
                continue
            W = nested_initialisation(m, d, seed=0).astype(np_dtype)
            routes = {"gram": 2, "moments": 1}
            if pl is None:
                routes.pop("moments")
            for route, power in routes.items():
                key = f"t_{route}_s"
                if route in last:
                    pm, pt = last[route]
                    predicted = pt * (m / pm) ** power
                    if predicted > budget_s:
                        row[key] = predicted
                        row[f"{route}_extrapolated"] = True
                        last[route] = (m, predicted)
                        continue
                t = _timings(lambda: finite.evaluate(W, problem, evaluation=route), repeats)[1]
                row[key] = t
                row[f"{route}_extrapolated"] = False
                last[route] = (m, t)
            if m <= baseline_max_width and not row.get("gram_extrapolated", False):
                row["t_gram_numpy_s"] = _timings(
                    lambda: finite._gram_interaction(W, problem, finite.DEFAULT_CHUNK, True, fused=False), 1)[1]
            auto = finite.choose_evaluation(m, problem, np_dtype)
            row["auto_route"] = auto
            if row.get(f"{auto}_extrapolated", False):
                row["t_auto_s"] = row[f"t_{auto}_s"]
                row["auto_extrapolated"] = True
            else:
                row["t_auto_s"] = _timings(lambda: finite.evaluate(W, problem, evaluation="auto"), repeats)[1]
                row["auto_extrapolated"] = False
            best = min(row[f"t_{r}_s"] for r in routes)
            row["auto_over_best"] = row["t_auto_s"] / best
            if "t_moments_s" in row:
                row["speedup_moments_over_gram"] = row["t_gram_s"] / row["t_moments_s"]
                if "t_gram_numpy_s" in row:
                    row["speedup_moments_over_gram_numpy"] = row["t_gram_numpy_s"] / row["t_moments_s"]
            rows.append(row)
            del W

    def find(d, m):
        return next((r for r in rows if r["d"] == d and r["m"] == m and "skipped" not in r), None)

    targets = {}
    r = find(16, 32768)
    if r is not None and "t_moments_s" in r:
        base = r.get("t_gram_numpy_s", r["t_gram_s"])
        targets["d16_m32768_moments_speedup"] = base / r["t_moments_s"]
        targets["d16_m32768_moments_speedup_ok"] = targets["d16_m32768_moments_speedup"] >= 20
    r = find(32, 32768)
    if r is not None and "t_moments_s" in r:
        base = r.get("t_gram_numpy_s", r["t_gram_s"])
        targets["d32_m32768_moments_speedup"] = base / r["t_moments_s"]
        targets["d32_m32768_moments_speedup_ok"] = targets["d32_m32768_moments_speedup"] >= 4
    r = find(16, 131072)
    if r is not None:
        targets["d16_m131072_auto_s"] = r["t_auto_s"]
        targets["d16_m131072_auto_ok"] = r["t_auto_s"] <= 2.0
    measured = [r["auto_over_best"] for r in rows if "auto_over_best" in r and not r.get("auto_extrapolated")]
    if measured:
        targets["max_auto_over_best"] = max(measured)
        targets["auto_within_1_2x"] = max(measured) <= 1.2
    return {
        "activation": activation, "dtype": dtype,
        "definition": "seconds per finite.evaluate (velocity + loss) by evaluation='gram', 'moments', 'auto' "
                      "(min over repeats); t_gram_numpy_s: Gram route with the unfused numpy passes; "
                      "speedups are gram time / moments time; auto_over_best = auto / min(gram, moments); "
                      "*_extrapolated: predicted from the previous width (m^2 for gram, m for moments), not run",
        "load_average_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "rows": rows,
        "targets": targets,
    }


# ---------------------------------------------------------------------------------------------
# (b) mean-field step
# ---------------------------------------------------------------------------------------------
def bench_meanfield_step(n_nodes=100_000, dim=32, activations=("he4", "he6"), repeats=7) -> dict:
    from .meanfield import OverlapField, initial_overlaps, projected_step_1d
    from .problem import Problem

    rows = []
    u = initial_overlaps(dim, n_nodes)
    for act in activations:
        problem = Problem(dim, act)

        def step():
            field = OverlapField(problem, u)
            return projected_step_1d(u, field.speed(u), 0.01)

        field = OverlapField(problem, u)
        step_t = _timings(step, repeats)
        rows.append({
            "activation": act, "nodes": n_nodes, "d": dim,
            "t_build_field_ms": 1e3 * _timings(lambda: OverlapField(problem, u), repeats)[1],
            "t_speed_ms": 1e3 * _timings(lambda: field.speed(u), repeats)[1],
            "t_step_ms": 1e3 * step_t[1],
            "t_step_median_ms": 1e3 * step_t[0],
        })
    return {"rows": rows, "max_step_ms": max(r["t_step_ms"] for r in rows),
            "definition": "one projected-GD step of the exact limit: OverlapField of the nodes, speed at "
                          "every node, exact 1-D step; minimum over repeats (median recorded)"}


# ---------------------------------------------------------------------------------------------
# (c) gradient flow vs projected GD
# ---------------------------------------------------------------------------------------------
def _curve_error(ds, ref) -> float:
    return float(np.max(np.abs(ds.mf_loss.values - ref.mf_loss.values)) / ref.mf_loss.values[0])


def bench_flow_vs_pgd(cases=(("he4", 16), ("he4", 32), ("he6", 8), ("he6", 16)), nodes=2048,
                      tolerances=FLOW_TOLERANCES, max_pgd_steps=20_000,
                      rtols=(1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)) -> dict:
    from .problem import Problem
    from .simulate import simulate

    rows = []
    for act, d in cases:
        problem = Problem(d, act)
        k = problem.information_exponent
        T = float(d ** ((k - 2) / 2))
        grid = T * np.arange(17) / 16
        common = dict(width=0, horizon=T, nodes=nodes, record_times=grid, progress=False, seed=0)
        t0 = time.perf_counter()
        ref = simulate(problem, method="flow", rtol=1e-10, atol=1e-13, integrator="DOP853", **common)
        ref_wall = time.perf_counter() - t0
        # flow: measured at every rtol of the list (cheap)
        flow_runs = []
        for rtol in rtols:
            t0 = time.perf_counter()
            ds = simulate(problem, method="flow", rtol=rtol, atol=rtol * 1e-3, **common)
            flow_runs.append({"rtol": rtol, "evaluations": int(ds.attrs["velocity_evaluations"]),
                              "wall_time_s": time.perf_counter() - t0, "error": _curve_error(ds, ref)})
            if flow_runs[-1]["error"] <= min(tolerances) and len(flow_runs) >= 2:
                break
        # pgd: halve the step (eta = T / 2^j, so every record time is a step) until the loosest
        # tolerance is met or the step budget is spent
        j = int(math.ceil(math.log2(T / min(0.1, 0.9 * problem.max_stable_step))))
        pgd_runs = []
        while True:
            eta = T / 2**j
            n_steps = 2**j
            if n_steps > max_pgd_steps and pgd_runs:
                break
            t0 = time.perf_counter()
            ds = simulate(problem, method="pgd", step=eta, **common)
            pgd_runs.append({"step": eta, "evaluations": int(ds.attrs["velocity_evaluations"]),
                             "wall_time_s": time.perf_counter() - t0, "error": _curve_error(ds, ref)})
            met = [r for r in pgd_runs if r["error"] <= max(tolerances)]
            if pgd_runs[-1]["error"] <= min(tolerances) or len(met) >= 2:
                break  # (one halving past the loosest tolerance confirms the first order)
            j += 1
        per_tol = []
        for tol in tolerances:
            f = next((r for r in flow_runs if r["error"] <= tol), None)
            p = next((r for r in pgd_runs if r["error"] <= tol), None)
            extrapolated = False
            if p is None and len(pgd_runs) >= 2:
                # first order (checked: pgd_error_halving_ratios ~ 2): error ~ C * eta, C from the
                # finest measured step
                last = pgd_runs[-1]
                factor = last["error"] / tol
                n = int(math.ceil(last["evaluations"] * factor))
                p = {"step": T / n, "evaluations": n, "wall_time_s": last["wall_time_s"] * n / last["evaluations"],
                     "error": tol}
                extrapolated = True
            entry = {"tolerance": tol, "flow": f, "pgd": p, "pgd_extrapolated": extrapolated}
            if f is not None and p is not None:
                entry["evaluation_ratio"] = p["evaluations"] / f["evaluations"]
                entry["wall_time_ratio"] = p["wall_time_s"] / f["wall_time_s"]
            per_tol.append(entry)
        orders = [a["error"] / b["error"] for a, b in zip(pgd_runs, pgd_runs[1:]) if b["error"] > 0]
        rows.append({
            "activation": act, "k": k, "d": d, "horizon": T, "nodes": nodes,
            "reference": {"integrator": "DOP853", "rtol": 1e-10, "evaluations": int(ref.attrs["velocity_evaluations"]),
                          "wall_time_s": ref_wall, "final_loss": float(ref.mf_loss.values[-1]),
                          "initial_loss": float(ref.mf_loss.values[0])},
            "flow_runs": flow_runs, "pgd_runs": pgd_runs,
            "pgd_error_halving_ratios": orders,
            "at_tolerance": per_tol,
        })
    return {
        "accuracy": "max over the 16 equispaced times t = T/16 ... T of |L(t) - L_ref(t)| / L_ref(0), "
                    "L = loss of the exact limit (width 0)",
        "tolerances": list(tolerances),
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------
# (d) population simulator vs sampled minibatch gradient
# ---------------------------------------------------------------------------------------------
def bench_sampled_vs_population(dim=32, width=512, activation="he4", batches=(1024, 4096, 16384, 65536),
                                repeats=9, accuracies=(0.1, 0.01), authors_batch=8192, warm_time=None) -> dict:
    from .finite import evaluate, projected_step
    from .problem import Problem
    from .sampled import _Pointwise, minibatch_gradient
    from .sphere import nested_initialisation, tangent_project

    problem = Problem(dim, activation)
    k = problem.information_exponent
    T = float(dim ** ((k - 2) / 2))
    t_state = T if warm_time is None else warm_time
    W = nested_initialisation(width, dim, seed=0)
    eta = 0.05
    loss0 = evaluate(W, problem).loss
    t = 0.0
    # a state during learning: exact projected GD until the loss has fallen by a quarter (or t_state)
    while t < t_state - 1e-12:
        ev = evaluate(W, problem)
        if ev.loss <= 0.75 * loss0:
            break
        W = projected_step(W, ev.velocity, eta)
        t += eta
    ev = evaluate(W, problem)
    v = ev.velocity
    vnorm = float(np.linalg.norm(v))
    t_exact = _timings(lambda: evaluate(W, problem, with_kernel_mean=False), 15, 0.5)[1]
    rng = np.random.default_rng([0, 7])
    pw = _Pointwise(problem.activation)
    rows = []
    for B in batches:
        errs, times = [], []
        for _ in range(repeats):
            X = rng.standard_normal((B, dim))
            y = problem.target(X[:, 0])
            t0 = time.perf_counter()
            g, _ = minibatch_gradient(W, X, y, problem, pw)
            times.append(time.perf_counter() - t0)
            errs.append(float(np.linalg.norm(-tangent_project(W, g) - v) / vnorm))
        rows.append({"batch": B, "rel_error_median": float(np.median(errs)),
                     "rel_error_rms": float(np.sqrt(np.mean(np.square(errs)))),
                     "t_gradient_s": float(np.min(times))})
    # fit median rel_error = C / sqrt(B) (medians: the errors of a degree-8 polynomial of Gaussians
    # are heavy-tailed, and a few draws' rms is dominated by outliers)
    C = float(np.median([r["rel_error_median"] * math.sqrt(r["batch"]) for r in rows]))
    largest = rows[-1]
    per_sample = largest["t_gradient_s"] / largest["batch"]
    targets = []
    for eps in accuracies:
        B = int(math.ceil((C / eps) ** 2))
        targets.append({"rel_error": eps, "batch_needed": B, "t_sampled_s": per_sample * B, "t_exact_s": t_exact,
                        "time_ratio_sampled_over_exact": per_sample * B / t_exact})
    return {
        "activation": activation, "d": dim, "m": width, "state_time": t, "state_loss": ev.loss,
        "initial_loss": loss0,
        "definition": "rel_error = ||P_w(-g_B) - v||_F / ||v||_F over all neurons, g_B the minibatch "
                      "gradient on B fresh samples, v the exact population velocity; fit of the median "
                      "over draws: rel_error = C/sqrt(B); batch_needed = (C/eps)^2",
        "rows": rows,
        "C": C,
        "authors_batch": authors_batch,
        "authors_batch_rel_error": C / math.sqrt(authors_batch),
        "t_exact_evaluation_s": t_exact,
        "at_accuracy": targets,
    }


# ---------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------
def run_benchmarks(quick: bool = False, progress: bool = True) -> dict:
    """All four benchmarks; ``quick`` uses tiny sizes (seconds; for tests, numbers not meaningful)."""
    from . import __version__

    def say(msg):
        if progress:
            print(f"[bench] {msg}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    machine = machine_info()
    machine["page_fault_cost_before_tuning"] = page_fault_cost()
    malloc = tune_malloc()
    machine["page_fault_cost_after_tuning"] = page_fault_cost()
    result = {"meta": {"mfcore_version": __version__, "quick": bool(quick),
                       "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "machine": machine, "malloc_tuning": malloc}}
    say("finite-width step")
    if quick:
        result["finite_step"] = bench_finite_step((512, 1024), dims_at=(16,), width_for_dims=512, repeats=2,
                                                  chunk_scan_width=512, chunk_scan=(128, 512))
    else:
        result["finite_step"] = bench_finite_step((512, 1024, 2048, 4096, 8192, 16384), dims_at=(16, 64, 128),
                                                  repeats=3, chunk_scan_width=4096)
    say("exact routes: gram vs moments vs auto")
    if quick:
        result["routes"] = bench_routes(dims=(8, 16), widths=(512, 1024), repeats=1, baseline_max_width=1024)
    else:
        result["routes"] = bench_routes()
    result["routes"]["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    say("mean-field step")
    result["meanfield_step"] = bench_meanfield_step(n_nodes=10_000 if quick else 100_000,
                                                    repeats=3 if quick else 7)
    say("gradient flow vs projected GD")
    if quick:
        result["flow_vs_pgd"] = bench_flow_vs_pgd(cases=(("he4", 8),), nodes=128, tolerances=(1e-2, 1e-3),
                                                  max_pgd_steps=512, rtols=(1e-3, 1e-4, 1e-5))
    else:
        result["flow_vs_pgd"] = bench_flow_vs_pgd()
    say("sampled minibatch SGD vs population simulator")
    if quick:
        result["sampled_vs_population"] = bench_sampled_vs_population(dim=16, width=64, batches=(1024, 4096, 16384),
                                                                      repeats=7, warm_time=1.0)
    else:
        result["sampled_vs_population"] = bench_sampled_vs_population()
    result["meta"]["total_wall_time_s"] = time.perf_counter() - start
    result["meta"]["load_average_1min_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return result


def summary(result: dict) -> str:
    """A few lines of the headline numbers."""
    fs, mf, fp, sp = (result[k] for k in ("finite_step", "meanfield_step", "flow_vs_pgd", "sampled_vs_population"))
    lines = [f"load average (1, 5, 15 min) at start: {result['meta']['machine'].get('load_average')}"]
    lines += [f"finite step / its two products: max ratio {fs['max_ratio_velocity']:.2f} (velocity), "
             f"{fs['max_ratio_velocity_and_loss']:.2f} (velocity + loss) over "
             + ", ".join(f"m={r['m']},d={r['d']}" for r in fs["rows"]),
             f"mean-field step, N={mf['rows'][0]['nodes']}: " + ", ".join(
                 f"{r['activation']} {r['t_step_ms']:.2f} ms" for r in mf["rows"])]
    for r in result.get("routes", {}).get("rows", []):
        if "skipped" in r:
            lines.append(f"routes d={r['d']} m={r['m']}: skipped ({r['skipped']})")
            continue
        star = lambda k: "*" if r.get(k) else ""  # noqa: E731
        mom = f"moments {r['t_moments_s']:.3g}{star('moments_extrapolated')} s, " if "t_moments_s" in r else ""
        lines.append(f"routes d={r['d']} m={r['m']}: gram {r['t_gram_s']:.3g}{star('gram_extrapolated')} s, {mom}"
                     f"auto ({r['auto_route']}) {r['t_auto_s']:.3g}{star('auto_extrapolated')} s "
                     f"[* extrapolated]")
    for row in fp["rows"]:
        for e in row["at_tolerance"]:
            if "evaluation_ratio" in e:
                lines.append(f"flow vs pgd {row['activation']} d={row['d']} T={row['horizon']:g} tol={e['tolerance']:g}: "
                             f"pgd {e['pgd']['evaluations']}{' (extrapolated)' if e['pgd_extrapolated'] else ''} "
                             f"vs flow {e['flow']['evaluations']} evaluations (x{e['evaluation_ratio']:.1f})")
    for e in sp["at_accuracy"]:
        lines.append(f"sampled gradient at rel. error {e['rel_error']:g}: batch {e['batch_needed']}, "
                     f"{e['time_ratio_sampled_over_exact']:.1f}x the exact evaluation")
    return "\n".join(lines)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_benchmarks(path, quick: bool = False, progress: bool = True, overwrite: bool = False) -> dict:
    """Run :func:`run_benchmarks` and write the JSON atomically to ``path``.

    The path is checked first (:func:`mfcore.cli.check_output_file`: a ``.json`` file in an
    existing, writable folder; an existing file only with ``overwrite``).
    """
    from .cli import check_output_file
    from .results import _atomic_write

    path = check_output_file(path, overwrite, "--out", suffixes=(".json",))
    result = run_benchmarks(quick=quick, progress=progress)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=1, default=_json_default, allow_nan=False)
            fh.write("\n")

    _atomic_write(path, write)
    return result


def add_parser(subparsers) -> None:
    """Register ``mfcore bench`` (hook of :mod:`mfcore.cli`)."""
    p = subparsers.add_parser(
        "bench", help="measure the simulators' speed and write a JSON report",
        description="Time the finite-width step against its matrix products, the mean-field step, "
        "adaptive gradient flow against fixed-step projected GD, and the population simulator against "
        "sampled minibatch SGD; write everything to a JSON file.",
    )
    p.add_argument("--out", required=True, help="output FILE.json (checked before the benchmarks run)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (atomically)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds): checks the pipeline only")
    p.set_defaults(func=_run_cli)


def _run_cli(args) -> int:
    result = write_benchmarks(args.out, quick=args.quick, overwrite=args.overwrite)
    print(summary(result))
    print(f"wrote {args.out}")
    return 0

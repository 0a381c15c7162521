r"""Command line: ``mfcore <subcommand> ...`` (also ``python -m mfcore ...``).

Subcommands
-----------
``simulate``
    One run of :func:`mfcore.simulate`; prints a short summary and optionally writes the result
    (``--out FILE.json`` or ``FILE.nc``, see :mod:`mfcore.results`).

Other modules may add subcommands. :func:`build_parser` imports, for every name in
:data:`PLUGIN_MODULES` (``mfcore.sweep``, ``mfcore.bench``), the module if it exists and calls its
``add_parser(subparsers)``. That function must add one sub-parser with
``subparsers.add_parser(name, help=...)``, define its arguments and call
``parser.set_defaults(func=run)`` where ``run(args)`` returns an exit code (or ``None`` for 0).
Any ``ValueError`` raised by ``run`` is reported on stderr as an input error (exit code 2, no
traceback), and so are an ``OSError`` (a file that cannot be written, an unreachable scheduler)
and a ``MemoryError``; a ``FloatingPointError`` (numerical blow-up) exits with code 1; Ctrl-C
(``KeyboardInterrupt``) exits with 130. A plugin that fails to import is reported with a one-line
warning on stderr and its subcommand is left out.

Every run is validated by :mod:`mfcore.runspec` (types, ranges, step count, memory estimate) and
every output path by :func:`check_output_file` before any computation starts.

Exit codes: 0 success, 1 numerical failure, 2 invalid input (refused before any work, one line
on stderr), 130 interrupted.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
from pathlib import Path

from .finite import DEFAULT_CHUNK
from .runspec import MAX_STEPS

#: Modules that may contribute subcommands through ``add_parser(subparsers)``.
PLUGIN_MODULES = ("mfcore.sweep", "mfcore.bench", "mfcore.results")
#: Exit codes, shown by ``mfcore --help`` and documented in the README.
EXIT_CODES = ("exit codes: 0 success, 1 numerical failure (non-finite values), 2 invalid input "
              "(refused before any work, one line on stderr), 130 interrupted (Ctrl-C)")
#: Folders of virtual file systems: never an output location.
_VIRTUAL_ROOTS = ("/proc", "/sys", "/dev")


def check_output_file(path, overwrite: bool = False, what: str = "output file",
                      suffixes: tuple | None = None) -> Path:
    """Validate an output path before any computation; return the path to write.

    Refused (ValueError, one line): a path under ``/proc``, ``/sys`` or ``/dev``; a directory; a
    missing parent folder; a folder where no file can be created (probed with a temporary file,
    which also catches read-only mounts); an existing file unless ``overwrite``; an existing
    symbolic link unless ``overwrite`` (then its target is written, so the link stays a link); a
    suffix not in ``suffixes``. Writers replace the file atomically (temporary file, then
    :func:`os.replace`).
    """
    raw = str(path)
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {raw!r} must end with {' or '.join(suffixes)}")
    absolute = Path(os.path.abspath(path))
    target = path.resolve() if path.is_symlink() else absolute
    for root in _VIRTUAL_ROOTS:
        for p in {absolute, target}:
            if p == Path(root) or Path(root) in p.parents:
                raise ValueError(f"{what} {raw!r} is under {root}, a virtual file system: choose a real folder")
    if os.path.lexists(path):
        if target.is_dir():
            raise ValueError(f"{what} {raw!r} is a directory: give a file name")
        if path.is_symlink() and not overwrite:
            raise ValueError(f"{what} {raw!r} is a symbolic link (to {str(target)!r}); pass --overwrite "
                             "to replace the file it points to")
        if target.exists() and not target.is_file():
            raise ValueError(f"{what} {raw!r} exists and is not a regular file")
        if not overwrite:
            raise ValueError(f"{what} {raw!r} exists; pass --overwrite to replace it")
    parent = target.parent
    if not parent.is_dir():
        raise ValueError(f"the folder {str(parent)!r} of the {what} {raw!r} does not exist")
    try:  # the only reliable test of "writable" (permissions, read-only mounts, root)
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{target.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ValueError(f"cannot write the {what} {raw!r} in {str(parent)!r}: {exc.strerror or exc}") from None
    return target


def _add_simulate(subparsers) -> None:
    p = subparsers.add_parser(
        "simulate",
        help="run a finite network and the exact infinite-width limit",
        description="Run projected GD (or the adaptive gradient flow) of a width-m network and of the "
        "exact infinite-width limit from the same initialisation; print final losses and gaps.",
    )
    p.add_argument("--activation", default="he4", help="student activation: he{k}, sums like he4+he6, relu, tanh, bump (default he4)")
    p.add_argument("--target", default=None, help="teacher link (default: same as --activation)")
    p.add_argument("--dim", type=int, default=32, help="input dimension d >= 2 (default 32)")
    p.add_argument("--width", type=int, default=512, help="number of neurons m >= 0; 0 runs the limit alone (default 512)")
    p.add_argument("--horizon", type=float, default=20.0, help="final mean-field time T > 0 (default 20)")
    p.add_argument("--step", type=float, default=0.05, help="projected-GD step eta (default 0.05)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial neurons (default 0)")
    p.add_argument("--method", choices=("pgd", "flow"), default="pgd", help="projected GD or adaptive gradient flow")
    p.add_argument("--nodes", type=int, default=4096, help="quantile nodes N of the limit (default 4096)")
    p.add_argument("--records", type=int, default=80, help="number of record times (default 80)")
    p.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance of --method flow (default 1e-6)")
    p.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance of --method flow (default 1e-9)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="precision of the finite network")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help=f"Gram-matrix rows per block (default {DEFAULT_CHUNK})")
    p.add_argument("--evaluation", choices=("auto", "gram", "moments"), default="auto",
                   help="route of the finite interaction: gram (O(m^2 d)), moments (exact polynomial "
                   "moments, linear in m) or auto (the cheaper; default)")
    p.add_argument("--keep-neurons", action="store_true", help="store per-neuron gaps and overlaps (needs --out FILE.nc)")
    p.add_argument("--out", default=None, help="write the result to FILE.json or FILE.nc (checked before "
                   "the run; an existing file only with --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (atomically)")
    p.add_argument("--max-steps", type=int, default=MAX_STEPS, metavar="N",
                   help=f"refuse runs of more than N steps (default {MAX_STEPS:.0e}; 0 lifts the cap)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: automatic for long runs)")
    p.set_defaults(func=_run_simulate)


def _run_simulate(args) -> int:
    from .results import check_output_path, save_dataset
    from .runspec import RunSpec
    from .simulate import simulate

    if args.keep_neurons and (args.out is None or not str(args.out).lower().endswith(".nc")):
        raise ValueError(
            "--keep-neurons stores per-neuron arrays, which only a netCDF result keeps: give "
            f"--out FILE.nc (got {'no --out' if args.out is None else '--out ' + repr(args.out)})"
        )
    out = None
    if args.out is not None:
        check_output_path(args.out)  # format and netCDF writer
        out = check_output_file(args.out, args.overwrite, "--out")
    if args.max_steps < 0:
        raise ValueError(f"--max-steps must be >= 0 (0 lifts the cap), got {args.max_steps}")
    spec = RunSpec.from_mapping({
        "dim": args.dim, "activation": args.activation, "target": args.target, "width": args.width,
        "horizon": args.horizon, "step": args.step, "method": args.method, "nodes": args.nodes,
        "seed": args.seed, "n_records": args.records, "rtol": args.rtol, "atol": args.atol,
        "chunk": args.chunk, "dtype": args.dtype, "evaluation": args.evaluation,
        "keep_neurons": args.keep_neurons}, source="--")
    max_steps = args.max_steps or None
    spec.check(max_steps=max_steps)  # the same checks as simulate(), before anything is allocated
    problem = spec.problem()
    ds = simulate(problem, progress=args.progress, max_steps=max_steps, **spec.simulate_kwargs())
    last = ds.isel(t=-1)
    lines = [
        f"{problem.activation.name} -> {problem.target.name}, d={problem.dim}, m={args.width}, "
        f"method={args.method}, {ds.attrs.get('evaluation_route', 'gram')} route, "
        f"{ds.attrs['velocity_evaluations']} velocity evaluations, "
        f"{ds.attrs['wall_time_s']:.2f} s",
        f"t = {float(last.t):.6g}",
        f"  limit loss         L(rho_t)     = {float(last.mf_loss):.6g}  (t=0: {float(ds.mf_loss[0]):.6g})",
    ]
    if args.width > 0:
        lines += [
            f"  network loss       L(rho_hat_t) = {float(last.loss):.6g}  (t=0: {float(ds.loss[0]):.6g})",
            f"  mean gap           omega_t      = {float(last.gap_mean):.4g}  (x sqrt(m): "
            f"{float(last.gap_mean) * args.width ** 0.5:.4g})",
            f"  max gap                         = {float(last.gap_quantile.sel(quantile=1.0)):.4g}",
            f"  function gap       ||f_m-f||^2  = {float(last.function_gap):.4g}  (x m: "
            f"{float(last.function_gap) * args.width:.4g})",
        ]
    if out is not None:
        lines.append(f"wrote {save_dataset(ds, out)}")
    print("\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``mfcore`` parser with ``simulate`` and the subcommands of :data:`PLUGIN_MODULES`."""
    parser = argparse.ArgumentParser(
        prog="mfcore",
        description="Finite-width vs exact infinite-width mean-field dynamics (single-index model).",
        epilog=EXIT_CODES,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_simulate(subparsers)
    for name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # the optional module is simply absent
                continue
            print(f"mfcore: warning: subcommands of {name} unavailable ({exc})", file=sys.stderr)
            continue
        except Exception as exc:  # a broken plugin must not break the other subcommands
            print(f"mfcore: warning: subcommands of {name} unavailable ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
            continue
        add = getattr(module, "add_parser", None)
        if callable(add):
            add(subparsers)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 400 else text[:400] + " ..."


def main(argv=None) -> int:
    """Entry point of the ``mfcore`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except ValueError as exc:
        print(f"mfcore {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:
        print(f"mfcore {args.command}: numerical failure: {exc}", file=sys.stderr)
        return 1
    except MemoryError as exc:
        print(f"mfcore {args.command}: error: out of memory ({exc or 'allocation failed'}); reduce the "
              "run's size", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mfcore {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mfcore {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0 if code is None else int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

r"""Saving and loading simulation results (:func:`mfcore.simulate` datasets).

Two formats, chosen by the file extension:

``.nc``
    netCDF-4 through the ``h5netcdf`` engine: every variable and coordinate. netCDF attributes
    must be strings, numbers or numeric arrays, so booleans, ``None``, dicts and lists are stored
    as JSON strings; their names are listed in the attribute ``_json_attrs`` and
    :func:`load_dataset` decodes them back.
``.json``
    a small, human-readable summary: equal-length lists ``t``, ``mf_loss`` and every other
    variable that depends on ``t`` alone (``loss``, ``gap_mean``, ``function_gap``,
    ``flipped_fraction`` when present), plus ``attrs``. Variables with more dimensions (gap
    quantiles, per-neuron arrays) are left out; use ``.nc`` to keep them. NaN is written as
    ``null``.

Both writers are atomic: the file is written under a temporary name in the target folder and
moved into place with :func:`os.replace`, so a crash never leaves a half-written result. The file
gets the usual permissions of a new file, ``0o666 & ~umask`` (the temporary file of
:func:`tempfile.mkstemp` is private, mode ``0o600``, and is widened before the rename).
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

#: File extensions understood by :func:`save_dataset` and :func:`load_dataset`.
FORMATS = (".nc", ".json")
_JSON_ATTRS = "_json_attrs"


def _format_of(path) -> str:
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(
            f"unknown result format {ext or '(no extension)'!r} for {str(path)!r}; "
            f"use one of {', '.join(FORMATS)} (netCDF or JSON)"
        )
    return ext


def _require_netcdf_backend() -> None:
    # h5netcdf writes through h5py, which it does not always pull in as a dependency
    if importlib.util.find_spec("h5py") is None:
        raise ValueError("writing .nc results needs the h5py package (pip install h5py); "
                         "or write a .json summary instead")


def check_output_path(path) -> Path:
    """Validate an output path before a long run: known extension, an existing parent folder and,
    for ``.nc``, an installed netCDF writer."""
    path = Path(path)
    if _format_of(path) == ".nc":
        _require_netcdf_backend()
    parent = path.resolve().parent
    if not parent.is_dir():
        raise ValueError(f"output folder {str(parent)!r} does not exist")
    return path


def _plain(value):
    """numpy scalars/arrays -> Python values, for JSON."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _netcdf_attrs(attrs: dict) -> dict:
    out, encoded = {}, []
    for key, value in attrs.items():
        if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (dict, list, tuple)):
            out[key] = json.dumps(_plain(value))
            encoded.append(key)
        elif isinstance(value, (str, int, float, np.integer, np.floating)):
            out[key] = value
        elif isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
            out[key] = value
        else:
            out[key] = str(value)
    if encoded:
        out[_JSON_ATTRS] = json.dumps(encoded)
    return out


def _decode_attrs(attrs: dict) -> dict:
    attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in attrs.items()}
    encoded = attrs.pop(_JSON_ATTRS, None)
    if encoded is not None:
        for key in json.loads(encoded):
            if key in attrs:
                attrs[key] = json.loads(attrs[key])
    return attrs


def _current_umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it: set and restore
    os.umask(mask)
    return mask


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_dataset(ds: xr.Dataset, path) -> Path:
    """Write a result to ``path`` (``.nc`` or ``.json``, see the module docstring), atomically.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    ext = _format_of(path)
    if not isinstance(ds, xr.Dataset):
        raise ValueError(f"save_dataset expects an xarray.Dataset, got {type(ds).__name__}")
    if ext == ".nc":
        _require_netcdf_backend()
        out = ds.copy()
        out.attrs = _netcdf_attrs(ds.attrs)
        _atomic_write(path, lambda tmp: out.to_netcdf(tmp, engine="h5netcdf"))
    else:
        if "t" not in ds.coords:
            raise ValueError("a JSON result needs the time coordinate 't'")
        payload = {"t": _plain(ds["t"].values)}
        for name, var in ds.data_vars.items():
            if var.dims == ("t",):
                payload[str(name)] = _plain(var.values)
        payload["attrs"] = _plain(dict(ds.attrs))

        def write(tmp):
            # one line per key: readable, and still valid JSON
            body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v, allow_nan=False, default=str)}"
                               for k, v in payload.items())
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write("{\n" + body + "\n}\n")

        _atomic_write(path, write)
    return path


def load_dataset(path) -> xr.Dataset:
    """Read a result written by :func:`save_dataset` (fully loaded into memory)."""
    path = Path(path)
    ext = _format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"no result file {str(path)!r}")
    if ext == ".nc":
        ds = xr.load_dataset(path, engine="h5netcdf")
        ds.attrs = _decode_attrs(ds.attrs)
        return ds
    with open(path, encoding="utf-8") as fh:
        payload = json.load(fh)
    if "t" not in payload:
        raise ValueError(f"{str(path)!r} is not an mfcore JSON result (no 't')")
    attrs = payload.pop("attrs", {})
    t = np.asarray(payload.pop("t"), dtype=float)
    data = {k: ("t", np.array([np.nan if v is None else v for v in vals], dtype=float))
            for k, vals in payload.items()}
    return xr.Dataset(data, coords={"t": t}, attrs=attrs)

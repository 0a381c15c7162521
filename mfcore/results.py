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

Integrity (``.nc``)
-------------------
Every ``.nc`` file written by :func:`save_dataset` carries the attribute ``mfcore_checksums``,
a JSON object ``{"format": 1, "algorithm": "sha256", "variables": {name: hex},
"attributes": {name: hex}}`` with one SHA-256 digest per variable (data variables *and*
coordinates) and per global attribute, computed on the file as read back (:func:`checksums`):

* a variable's digest covers a JSON header ``{dims, shape, dtype, attrs}`` and its values in C
  order: the raw little-endian bytes of numbers and booleans (every NaN written as the one
  canonical NaN), the UTF-8 JSON list of the elements of a string array;
* an attribute's digest covers the canonical JSON ``[name, value]`` (numpy scalars as Python
  numbers, arrays as ``{dtype, shape, values}``).

:func:`load_dataset` recomputes them and raises :class:`IntegrityError` (a ``ValueError``) naming
the file and every variable or attribute that was changed, added or removed since the file was
written, and for a ``.nc`` file without checksums. ``load_dataset(path, verify=False)`` skips
the check (for tools that inspect a damaged file). The sweep cache (:mod:`mfcore.sweep`) reads
its entries through :func:`load_dataset`, so an edited entry stops a sweep before any work.

After a legitimate change (a rerun assembled by other means, an attribute corrected by hand),
seal the file again with **one** command, ``mfcore reseal FILE...`` (:func:`reseal`): it
rewrites the attribute ``mfcore_checksums`` only, never the data. JSON summaries carry no
checksum: they are for reading; the stored format is ``.nc``.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

#: File extensions understood by :func:`save_dataset` and :func:`load_dataset`.
FORMATS = (".nc", ".json")
_JSON_ATTRS = "_json_attrs"
#: Global attribute of a ``.nc`` result holding its checksums (see the module docstring).
CHECKSUM_ATTR = "mfcore_checksums"
_CHECKSUM_FORMAT = 1


class IntegrityError(ValueError):
    """A ``.nc`` result does not match its checksums (changed after it was written) or has none.

    ``path`` is the file, ``reason`` the one-line description without the file name or the
    remedy (callers such as the sweep cache add their own remedy), ``changes`` every difference
    found (``"data variable 'loss' changed"``, ...; the message shows the first six).
    """

    def __init__(self, path, reason: str, changes=()):
        self.path, self.reason, self.changes = str(path), reason, list(changes)
        super().__init__(f"{self.path}: {reason}; if this content is intended, seal it again with "
                         f"`mfcore reseal {self.path}`")


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


# ---------------------------------------------------------------------------------------------
# checksums
# ---------------------------------------------------------------------------------------------
def _canonical(value):
    """An attribute value as plain JSON data: numpy scalars -> numbers, arrays -> {dtype, shape, values}."""
    if isinstance(value, np.ndarray):
        return {"dtype": value.dtype.str.lstrip("<>|="), "shape": list(value.shape),
                "values": [_canonical(v) for v in value.ravel().tolist()]}
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "surrogateescape")
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def _dumps(value) -> bytes:
    # repr of floats round-trips exactly; NaN/inf are written as the tokens NaN/Infinity
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str).encode("utf-8")


def _variable_digest(var: xr.Variable) -> str:
    """SHA-256 of a variable: JSON header {dims, shape, dtype, attrs}, then its values in C order."""
    values = np.asarray(var.values)
    kind = values.dtype.kind
    if kind in "USO":  # strings (fixed-width or object): the JSON list of the elements
        dtype, body = "str", _dumps([_canonical(v) for v in values.ravel().tolist()])
    else:
        if kind == "f":
            values = np.where(np.isnan(values), values.dtype.type(np.nan), values)
        elif kind == "c":
            values = np.where(np.isnan(values), values.dtype.type(complex(np.nan, np.nan)), values)
        values = np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<"))
        dtype, body = values.dtype.str, values.tobytes()
    header = _dumps({"dims": list(var.dims), "shape": list(values.shape), "dtype": dtype,
                     "attrs": _canonical(dict(var.attrs))})
    h = hashlib.sha256(header)
    h.update(b"\0")
    h.update(body)
    return h.hexdigest()


def checksums(ds: xr.Dataset) -> dict:
    """Checksums of a dataset as read from a ``.nc`` file (the attribute ``mfcore_checksums`` excluded).

    Returns
    -------
    dict
        ``{"format": 1, "algorithm": "sha256", "variables": {name: hex}, "attributes": {name:
        hex}}``: one digest per variable (data variables and coordinates, see
        :func:`_variable_digest`) and one per global attribute, ``sha256(json([name, value]))``
        with the canonical JSON of the module docstring.
    """
    return {
        "format": _CHECKSUM_FORMAT, "algorithm": "sha256",
        "variables": {str(name): _variable_digest(var) for name, var in ds.variables.items()},
        "attributes": {str(k): hashlib.sha256(_dumps([str(k), _canonical(v)])).hexdigest()
                       for k, v in ds.attrs.items() if k != CHECKSUM_ATTR},
    }


def _kind_of(ds: xr.Dataset, name: str) -> str:
    return "coordinate" if name in ds.coords else "data variable"


def _differences(ds: xr.Dataset, stored: dict, current: dict) -> list[str]:
    """``["data variable 'loss' changed", "attribute 'x' added", ...]``: stored vs current checksums."""
    out = []
    for section, label in (("variables", None), ("attributes", "attribute")):
        old, new = stored.get(section, {}), current[section]
        for name in sorted(set(old) | set(new)):
            what = label or (_kind_of(ds, name) if name in new else "variable")
            if name not in new:
                out.append(f"{what} {name!r} removed")
            elif name not in old:
                out.append(f"{what} {name!r} added")
            elif old[name] != new[name]:
                out.append(f"{what} {name!r} changed")
    return out


def _stored_checksums(path, seal) -> dict:
    if seal is None:
        raise IntegrityError(path, "no checksums (attribute mfcore_checksums is missing: written by an "
                                   "older mfcore or another tool)")
    try:
        stored = json.loads(seal)
        ok = (stored.get("format") == _CHECKSUM_FORMAT and stored.get("algorithm") == "sha256"
              and isinstance(stored.get("variables"), dict) and isinstance(stored.get("attributes"), dict))
    except (TypeError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise IntegrityError(path, "unreadable attribute mfcore_checksums (expected the JSON of format 1)")
    return stored


def _verify(path, ds: xr.Dataset, seal) -> None:
    """Raise :class:`IntegrityError` unless ``ds`` (read from ``path``) matches the checksums ``seal``."""
    stored = _stored_checksums(path, seal)
    diffs = _differences(ds, stored, checksums(ds))
    if diffs:
        shown = ", ".join(diffs[:6]) + (f" and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise IntegrityError(path, f"does not match its checksums: {shown} since it was written", diffs)


def _read_netcdf(path) -> xr.Dataset:
    return xr.load_dataset(path, engine="h5netcdf")


def _seal(path) -> None:
    """Add the checksums of the ``.nc`` file ``path``, computed on the file as read back.

    Done on an in-memory copy (h5py writes one attribute; the data are not touched) and written
    back with a plain write: reopening the file with HDF5 would take a file lock, which a child
    process forked meanwhile by another thread (``git`` in a sweep worker) may still hold.
    """
    import io

    import h5py

    with open(path, "rb") as fh:
        image = fh.read()
    sums = checksums(xr.load_dataset(io.BytesIO(image), engine="h5netcdf"))
    buf = io.BytesIO(image)
    with h5py.File(buf, "r+") as fh:
        fh.attrs[CHECKSUM_ATTR] = json.dumps(sums, sort_keys=True)
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())


def reseal(path) -> str:
    """Recompute and store the checksums of a ``.nc`` result after a legitimate change.

    The file is copied under a temporary name, its attribute ``mfcore_checksums`` rewritten (the
    data and the other attributes are left byte for byte as they are) and the copy moved into
    place atomically. This is the one command to run after a stored sweep was legitimately
    rerun or edited (``mfcore reseal FILE...`` on the command line).

    Returns
    -------
    str
        What the old checksums said: ``"no checksums before"``, ``"content unchanged"`` or
        ``"changed: <the variables and attributes that differed>"``.
    """
    path = Path(path)
    if _format_of(path) != ".nc":
        raise ValueError(f"only .nc results carry checksums; {str(path)!r} is a JSON summary")
    if not path.is_file():
        raise ValueError(f"no result file {str(path)!r}")
    _require_netcdf_backend()
    try:
        ds = _read_netcdf(path)
    except Exception as exc:  # h5py/h5netcdf raise OSError, KeyError ... on garbage
        raise ValueError(f"cannot read {str(path)!r} as netCDF ({type(exc).__name__}: {exc})") from None
    seal = ds.attrs.get(CHECKSUM_ATTR)
    if seal is None:
        before = "no checksums before"
    else:
        try:
            diffs = _differences(ds, _stored_checksums(path, seal), checksums(ds))
            before = "changed: " + ", ".join(diffs) if diffs else "content unchanged"
        except IntegrityError:
            before = "unreadable checksums before"

    def write(tmp):
        shutil.copyfile(path, tmp)
        _seal(tmp)

    _atomic_write(path, write)
    return before


def add_parser(subparsers) -> None:
    """Register ``mfcore reseal FILE...`` (hook of :mod:`mfcore.cli`)."""
    p = subparsers.add_parser(
        "reseal", help="recompute the checksums of .nc results after a legitimate change",
        description="Recompute and store the checksums (attribute mfcore_checksums) of each .nc result, "
        "e.g. a stored sweep under sweeps/paper after a legitimate rerun. Only that attribute is "
        "rewritten; data and other attributes are unchanged. Reading a file whose content no longer "
        "matches its checksums fails with an error naming what changed.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=".nc result to seal")
    p.set_defaults(func=_run_reseal)


def _run_reseal(args) -> int:
    for name in args.files:
        print(f"resealed {name} ({reseal(name)})")
    return 0


def save_dataset(ds: xr.Dataset, path) -> Path:
    """Write a result to ``path`` (``.nc`` or ``.json``, see the module docstring), atomically.

    A ``.nc`` file is sealed with its checksums (attribute ``mfcore_checksums``, computed on the
    file as read back before it is moved into place); an attribute of that name in ``ds`` is
    ignored.

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
        out.attrs = _netcdf_attrs({k: v for k, v in ds.attrs.items() if k != CHECKSUM_ATTR})

        def write_nc(tmp):
            out.to_netcdf(tmp, engine="h5netcdf")
            _seal(tmp)

        _atomic_write(path, write_nc)
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


def load_dataset(path, verify: bool = True) -> xr.Dataset:
    """Read a result written by :func:`save_dataset` (fully loaded into memory).

    Parameters
    ----------
    path : str or Path
        A ``.nc`` or ``.json`` result.
    verify : bool
        For ``.nc``: recompute the checksums (module docstring) and compare them with the stored
        ones; ``False`` skips the check, for tools that inspect a damaged or unsealed file.
        Ignored for ``.json`` (no checksums).

    Returns
    -------
    xarray.Dataset
        The result; the attribute ``mfcore_checksums`` belongs to the file and is not returned.

    Raises
    ------
    IntegrityError
        ``verify`` and the ``.nc`` file has no checksums, or a variable (data variable or
        coordinate) or attribute was changed, added or removed since it was written; the message
        names the file and each of them.
    """
    path = Path(path)
    ext = _format_of(path)
    if not path.is_file():
        raise FileNotFoundError(f"no result file {str(path)!r}")
    if ext == ".nc":
        ds = _read_netcdf(path)
        if verify:
            _verify(path, ds, ds.attrs.get(CHECKSUM_ATTR))
        ds.attrs.pop(CHECKSUM_ATTR, None)
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

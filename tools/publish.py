"""Building and publishing the book: the execution cache's key, the published configuration, the site.

**The execution cache.** ``make book`` executes the notebooks through jupyter-cache, which keys an
executed notebook on its code cells only: a change of ``mfcore/`` (or of a configuration or a stored
sweep that the notebooks read, or of the pinned versions) would leave every cached result in place.
:func:`inputs_hash` hashes those inputs; ``make book`` runs ``python -m tools.publish cache-check``
first, which compares the hash with the one stored in ``_build/.mfcore-hash`` and, if they differ (or
the stamp is missing while a cache exists), removes ``_build/.jupyter_cache`` so that every notebook
is executed again. The Pages workflow keys its saved cache on the same hash
(``python -m tools.publish hash``). This part uses the standard library only (the workflow calls it
before the virtual environment exists).

**The published edition.** ``python -m tools.publish config --repo OWNER/NAME`` writes a copy of
``_config.yml`` with the repository's address and the Binder and Colab launch buttons; the workflow
builds with it (``make book BOOK_CONFIG=...``). The local build uses ``_config.yml`` unchanged and
stays fully offline.

**The site.** ``python -m tools.publish site`` assembles ``_build/site/``: the book (``_build/html``),
the student edition under ``student/``, and ``downloads/`` with both PDFs and the student kit. The
answer key is never copied there.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: What the notebooks' results depend on besides their own code cells (folders are read recursively).
CACHE_INPUTS = ("mfcore", "configs", "sweeps/paper", "pyproject.toml", "constraints.txt")
#: Never part of the hash (byte code, editor and OS litter).
_IGNORED_PARTS = {"__pycache__", ".ipynb_checkpoints", ".DS_Store"}
_IGNORED_SUFFIXES = (".pyc", ".pyo", "~", ".swp")

STAMP = Path("_build") / ".mfcore-hash"
CACHE = Path("_build") / ".jupyter_cache"

#: The downloads the site offers (source in the build tree -> name under downloads/).
DOWNLOADS = {
    "_build/pdf/book.pdf": "book.pdf",
    "_build/pdf/book-student.pdf": "book-student.pdf",
    "_build/student-kit.zip": "mfbook-student-kit.zip",
}


# ------------------------------------------------------------------------------------------------
# the execution cache
# ------------------------------------------------------------------------------------------------
def _input_files(root: Path, inputs=CACHE_INPUTS) -> list[Path]:
    files = []
    for name in inputs:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if d not in _IGNORED_PARTS)
                for f in sorted(filenames):
                    if f in _IGNORED_PARTS or f.endswith(_IGNORED_SUFFIXES):
                        continue
                    files.append(Path(dirpath) / f)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def inputs_hash(root: Path = REPO_ROOT, inputs=CACHE_INPUTS) -> str:
    """SHA-256 over the paths and contents of every file the notebooks' results depend on."""
    digest = hashlib.sha256()
    for path in _input_files(root, inputs):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def cache_decision(root: Path = REPO_ROOT, inputs=CACHE_INPUTS) -> tuple[bool, str, str]:
    """``(reset, reason, current_hash)``: whether the execution cache must be removed before building.

    The cache is removed when the stored hash differs from the current one, or when a cache exists
    without a stored hash (nothing says which code produced it).
    """
    current = inputs_hash(root, inputs)
    stamp, cache = root / STAMP, root / CACHE
    stored = stamp.read_text().strip() if stamp.is_file() else None
    if stored == current:
        return False, "mfcore, configs and stored sweeps unchanged since the cache was made", current
    if stored is None:
        if cache.exists():
            return True, f"{CACHE} has no {STAMP.name}: its results may come from other code", current
        return False, "no execution cache yet", current
    return True, "mfcore, configs, stored sweeps or pinned versions changed since the last build", current


def cache_check(root: Path = REPO_ROOT, inputs=CACHE_INPUTS, *, verbose: bool = True) -> bool:
    """Apply :func:`cache_decision`: remove the stale cache and write the new stamp. True if removed."""
    reset, reason, current = cache_decision(root, inputs)
    if reset and (root / CACHE).exists():
        shutil.rmtree(root / CACHE)
    (root / STAMP).parent.mkdir(parents=True, exist_ok=True)
    (root / STAMP).write_text(current + "\n")
    if verbose:
        action = "removed the execution cache: every notebook is executed again" if reset else "cache kept"
        print(f"execution cache: {reason}; {action} (inputs hash {current[:12]})")
    return reset


# ------------------------------------------------------------------------------------------------
# the published configuration (launch buttons) and the site
# ------------------------------------------------------------------------------------------------
def published_config(repo: str, root: Path = REPO_ROOT, branch: str = "main") -> dict:
    """``_config.yml`` with the repository's address, its button and the Binder/Colab launch buttons."""
    import yaml

    if not repo or repo.count("/") != 1 or any(c.isspace() for c in repo):
        raise ValueError(f"--repo must be OWNER/NAME, got {repo!r}")
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("repository", {}).update(url=f"https://github.com/{repo}", path_to_book="", branch=branch)
    config.setdefault("html", {})["use_repository_button"] = True
    config.setdefault("launch_buttons", {}).update(
        notebook_interface="jupyterlab", binderhub_url="https://mybinder.org",
        colab_url="https://colab.research.google.com", thebe=False)
    # the configuration file lives in _build/: keep the paths of the book's configuration
    config["bibtex_bibfiles"] = [str((root / b).resolve()) for b in config.get("bibtex_bibfiles", [])]
    local = config.get("sphinx", {}).get("local_extensions") or {}
    for name, path in local.items():
        local[name] = str((root / path).resolve())
    return config


def write_published_config(repo: str, out: Path, root: Path = REPO_ROOT, branch: str = "main") -> Path:
    import yaml

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Written by tools/publish.py for the published build (launch buttons). Do not edit.\n"
                   + yaml.safe_dump(published_config(repo, root, branch), sort_keys=False, allow_unicode=True))
    return out


def assemble_site(out: Path, root: Path = REPO_ROOT) -> list[str]:
    """``out/``: the book, ``student/`` (the student edition) and ``downloads/``. Returns what it holds."""
    book, student = root / "_build" / "html", root / "_build" / "handouts" / "html"
    missing = [p for p in [book, student, *(root / s for s in DOWNLOADS)] if not p.exists()]
    if missing:
        raise FileNotFoundError("missing (run make book pdf student-kit): "
                                + ", ".join(str(p.relative_to(root)) for p in missing))
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(book, out)
    shutil.copytree(student, out / "student")
    (out / "downloads").mkdir()
    for src, name in DOWNLOADS.items():
        shutil.copy2(root / src, out / "downloads" / name)
    leaked = sorted(str(p.relative_to(out)) for p in out.rglob("answer-key*"))
    if leaked:
        raise RuntimeError(f"the answer key must not be published: {leaked}")
    return ["index.html", "student/index.html", *(f"downloads/{n}" for n in DOWNLOADS.values())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("hash", help="print the hash of mfcore/, configs/, sweeps/paper/ and the pins")
    sub.add_parser("cache-check", help="remove _build/.jupyter_cache if that hash changed (make book)")
    cfg = sub.add_parser("config", help="write the published configuration (launch buttons)")
    cfg.add_argument("--repo", required=True, help="OWNER/NAME on GitHub")
    cfg.add_argument("--branch", default="main")
    cfg.add_argument("--out", type=Path, default=REPO_ROOT / "_build" / "_config.published.yml")
    site = sub.add_parser("site", help="assemble the published site")
    site.add_argument("--out", type=Path, default=REPO_ROOT / "_build" / "site")
    args = parser.parse_args(argv)
    try:
        if args.command == "hash":
            print(inputs_hash())
        elif args.command == "cache-check":
            cache_check()
        elif args.command == "config":
            print(f"published configuration: {write_published_config(args.repo, args.out, branch=args.branch)}")
        elif args.command == "site":
            for item in assemble_site(args.out):
                print(f"site: {args.out / item}")
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

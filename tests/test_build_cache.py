"""The execution cache of `make book` is never stale: a change of mfcore (or of a configuration, a
stored sweep or the pins) makes the next build execute every notebook again (tools/publish.py); the
Pages workflow restores only a cache made from the same code; launch buttons only when published."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from tools import publish as P

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tree(tmp_path) -> Path:
    """A temporary copy of everything the hash reads (never the tracked tree)."""
    for name in P.CACHE_INPUTS:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, tmp_path / name)
    return tmp_path


def _fake_cache(root: Path) -> Path:
    cache = root / P.CACHE
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "global.db").write_text("executed with the old code")
    return cache


def test_every_hashed_input_exists():
    for name in P.CACHE_INPUTS:
        assert (REPO_ROOT / name).exists(), f"{name} is hashed for the execution cache but missing"
    files = [p.relative_to(REPO_ROOT).as_posix() for p in P._input_files(REPO_ROOT)]
    assert any(f.startswith("mfcore/") and f.endswith(".py") for f in files)
    assert any(f.startswith("sweeps/paper/") for f in files)


def test_changing_one_line_of_mfcore_requests_reexecution(tree):
    assert P.cache_check(tree, verbose=False) is False  # first build: nothing to remove
    cache = _fake_cache(tree)
    reset, reason, _ = P.cache_decision(tree)
    assert not reset, reason
    source = tree / "mfcore" / "simulate.py"
    lines = source.read_text().split("\n")
    lines[0] = lines[0] + "  # edited"
    source.write_text("\n".join(lines))
    reset, reason, _ = P.cache_decision(tree)
    assert reset and "changed" in reason
    assert P.cache_check(tree, verbose=False) is True
    assert not cache.exists(), "the stale execution cache must be removed"
    assert P.cache_decision(tree)[0] is False, "after the rebuild the new hash is stored"


@pytest.mark.parametrize("edit", ["configs/paper.toml", "sweeps/paper/c5.nc", "constraints.txt"])
def test_configs_sweeps_and_pins_invalidate_too(tree, edit):
    P.cache_check(tree, verbose=False)
    _fake_cache(tree)
    with open(tree / edit, "ab") as fh:
        fh.write(b"\n")
    assert P.cache_decision(tree)[0]


def test_bytecode_does_not_invalidate(tree):
    P.cache_check(tree, verbose=False)
    (tree / "mfcore" / "__pycache__").mkdir(exist_ok=True)
    (tree / "mfcore" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert P.cache_decision(tree)[0] is False


def test_cache_without_stamp_is_not_trusted(tree):
    _fake_cache(tree)
    reset, reason, _ = P.cache_decision(tree)
    assert reset and ".mfcore-hash" in reason


def test_make_book_checks_the_cache_before_building():
    text = (REPO_ROOT / "Makefile").read_text()
    m = re.search(r"^book:.*\n((?:\t.*\n)+)", text, re.M)
    assert m, "no book rule"
    recipe = m.group(1)
    assert "tools.publish cache-check" in recipe and "jupyter-book build" in recipe
    assert recipe.index("cache-check") < recipe.index("jupyter-book build")


def _build_job() -> dict:
    flow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "book.yml").read_text())
    return next(j for j in flow["jobs"].values()
                if any("upload-pages-artifact" in str(s.get("uses", "")) for s in j["steps"]))


def test_workflow_restores_only_a_cache_of_the_same_code():
    job = _build_job()
    hash_step = next(s for s in job["steps"] if "tools.publish hash" in str(s.get("run", "")))
    cache = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/cache"))
    ref = "${{ steps.%s.outputs.hash }}" % hash_step["id"]
    assert ref in cache["with"]["key"]
    paths = cache["with"]["path"].split()
    assert "_build/.jupyter_cache" in paths and "_build/.mfcore-hash" in paths
    restore = [k.strip() for k in str(cache["with"].get("restore-keys", "")).splitlines() if k.strip()]
    assert all(key.startswith(f"jupyter-cache-{ref}") for key in restore), restore
    steps = [str(s.get("run", "")) + str(s.get("uses", "")) for s in job["steps"]]
    assert steps.index(next(s for s in steps if "tools.publish hash" in s)) < steps.index(
        next(s for s in steps if "actions/cache" in s))


def test_workflow_publishes_book_pdfs_and_kit_not_the_answer_key():
    job = _build_job()
    runs = "\n".join(str(s.get("run", "")) for s in job["steps"])
    for command in ("make book", "make pdf", "make student-kit", "make site"):
        assert command in runs, f"the Pages workflow does not run {command}"
    upload = next(s for s in job["steps"] if "upload-pages-artifact" in str(s.get("uses", "")))
    assert upload["with"]["path"] == "_build/site"
    assert set(P.DOWNLOADS.values()) == {"book.pdf", "book-student.pdf", "mfbook-student-kit.zip"}
    assert not any("answer" in src for src in P.DOWNLOADS)


def test_site_refuses_missing_parts(tmp_path):
    with pytest.raises(FileNotFoundError, match="make book pdf student-kit"):
        P.assemble_site(tmp_path / "site", root=tmp_path)


def test_launch_buttons_only_in_the_published_build(tmp_path):
    local = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert not local["repository"]["url"]
    assert not local["launch_buttons"]["binderhub_url"] and not local["launch_buttons"]["colab_url"]
    assert local["launch_buttons"]["thebe"] is False
    out = P.write_published_config("someone/mfbook", tmp_path / "published.yml")
    published = yaml.safe_load(out.read_text())
    assert published["repository"]["url"] == "https://github.com/someone/mfbook"
    assert published["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert published["launch_buttons"]["colab_url"].startswith("https://colab.research.google.com")
    assert published["launch_buttons"]["thebe"] is False
    for path in published["sphinx"].get("local_extensions", {}).values():
        assert Path(path).is_absolute() and Path(path).is_dir()
    with pytest.raises(ValueError):
        P.published_config("not a repo")
    job = _build_job()
    assert job.get("env", {}).get("BOOK_CONFIG", "").endswith("_config.published.yml")
    assert "tools.publish config --repo" in "\n".join(str(s.get("run", "")) for s in job["steps"])


def test_course_page_is_rebuilt_when_quick_times_change():
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert "mfbook_sphinx" in config["sphinx"]["local_extensions"]
    from tools import mfbook_sphinx

    assert "book/quick_times.json" in mfbook_sphinx.DEPENDENCIES["book/course"]
    text = (REPO_ROOT / "Makefile").read_text()
    m = re.search(r"^quick-times:.*\n((?:\t.*\n)+)", text, re.M)
    assert m and "tools.quick_times --commit" in m.group(1)
    assert re.search(r"^pdf:\s*handouts", text, re.M) and re.search(r"^handouts:\s*book", text, re.M)


def test_ci_fails_on_a_dirty_checkout():
    text = (REPO_ROOT / ".ci" / "run").read_text()
    test_at = text.index("make test\n")
    check = text.index("git status --porcelain)", test_at)
    assert "exit 1" in text[check:check + 400]

"""Render the built book in headless Chromium: math typeset, figures loaded, nothing from the network.

How the checks work (Chromium's ``--dump-dom`` prints the DOM after scripts ran, but cannot
run our own JavaScript inside the page):

* **math** -- ``--dump-dom`` of each page; every Sphinx math element (``span.math`` /
  ``div.math``) must contain an ``mjx-container`` (MathJax's output), there must be no
  ``mjx-merror``, and no raw ``$$``, ``\\(`` or ``\\[`` may remain in the page text outside code.
* **images** -- every ``<img>`` file must exist and decode (Pillow) with a non-zero size, *and* the
  browser must have loaded it: the page is opened in an ``<iframe>`` of a small probe page
  (``--allow-file-access-from-files`` gives it access to the iframe's document) whose script
  waits for MathJax and writes each image's ``naturalWidth`` plus every URL the page fetched
  (Resource Timing API) into its own DOM, which ``--dump-dom`` then prints.
* **offline** -- no ``<script src>`` or ``<link rel=stylesheet href>`` in any built HTML file
  points to ``http(s)://`` or ``//``, and no page fetched anything but ``file:``/``data:`` URLs.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parent.parent
HTML_DIR = REPO_ROOT / "_build" / "html"


def _chromium() -> str | None:
    if Path("/usr/bin/chromium").exists():
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM = _chromium()
if CHROMIUM is None:
    pytest.skip("chromium not found (/usr/bin/chromium or on PATH): apt-get install -y chromium",
                allow_module_level=True)
if not (HTML_DIR / "index.html").exists():
    pytest.skip("build the book first: make book", allow_module_level=True)


def _toc_docs() -> list[str]:
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text())
    docs = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                docs.append(str(node["file"]))
            for key, value in node.items():
                if key != "file":
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [re.sub(r"\.(md|ipynb)$", "", d) for d in docs]


PAGES = _toc_docs()


def _run_chromium(url: str, user_data_dir: Path, *extra: str) -> str:
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--no-first-run", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={user_data_dir}", "--virtual-time-budget=60000",
        *extra, "--dump-dom", url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stdout


class _DomScan(HTMLParser):
    """Collect page text outside code/scripts/MathJax output and count math elements."""

    SKIP = {"script", "style", "pre", "code", "textarea", "mjx-container", "noscript"}
    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool, bool]] = []  # (tag, is_math, math_has_mjx)
        self.skip_depth = 0
        self.text: list[str] = []
        self.math_total = 0
        self.math_unrendered = 0
        self.mjx = 0
        self.merror = 0
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag == "mjx-container":
            self.mjx += 1
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i][1]:
                    self.stack[i] = (self.stack[i][0], True, True)
                    break
        if tag == "mjx-merror":
            self.merror += 1
        if tag in self.VOID:
            return
        classes = (attrs.get("class") or "").split()
        is_math = tag in ("span", "div") and "math" in classes
        if is_math:
            self.math_total += 1
        self.stack.append((tag, is_math, False))
        if tag in self.SKIP:
            self.skip_depth += 1

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        while self.stack:
            name, is_math, has_mjx = self.stack.pop()
            if name in self.SKIP:
                self.skip_depth -= 1
            if is_math and not has_mjx:
                self.math_unrendered += 1
            if name == tag:
                break

    def handle_data(self, data):
        if self.skip_depth == 0:
            self.text.append(data)


PROBE = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="page" src="%(url)s" style="width:1280px;height:1600px"></iframe>
<script>
const frame = document.getElementById('page');
const out = (obj) => { document.getElementById('result').textContent = JSON.stringify(obj); };
frame.addEventListener('load', () => {
  let doc, win;
  try { doc = frame.contentDocument; win = frame.contentWindow; } catch (e) { out({error: String(e)}); return; }
  if (!doc) { out({error: 'no access to the iframe document'}); return; }
  const report = async (mathjax) => {
    const imgs = Array.from(doc.images);
    // img.decode() rejects if the browser cannot decode the image; Chromium may postpone it
    // for images far outside the viewport, so a decode still pending after 3 s falls back to
    // 'loaded with a non-zero size' (Pillow fully decodes every image file in the test too).
    const settle = (i) => Promise.race([
      i.decode().then(() => true, () => false),
      new Promise(r => setTimeout(() => r(i.complete && i.naturalWidth > 0), 3000))]);
    const decoded = await Promise.all(imgs.map(settle));
    const images = imgs.map((i, k) => ({
      src: i.getAttribute('src'), complete: i.complete, decoded: decoded[k],
      naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}));
    const resources = win.performance.getEntriesByType('resource').map(e => e.name);
    out({mathjax, images, resources, mjx: doc.querySelectorAll('mjx-container').length});
  };
  const mj = win.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => report('done'), (e) => report('error: ' + e));
  } else {
    setTimeout(() => { const m = win.MathJax;
      if (m && m.startup && m.startup.promise) { m.startup.promise.then(() => report('done')); }
      else { report('absent'); } }, 3000);
  }
});
</script></body></html>
"""


def _probe(page: Path, tmp_path: Path) -> dict:
    probe = tmp_path / "probe.html"
    probe.write_text(PROBE % {"url": page.as_uri()})
    # Typesetting a long page can outlast Chromium's virtual-time budget on a busy machine:
    # try a few times (fresh profile each time) before calling the page broken.
    for attempt in range(3):
        dom = _run_chromium(probe.as_uri(), tmp_path / f"profile-probe-{attempt}", "--allow-file-access-from-files")
        m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
        assert m, "probe page produced no result"
        raw = m.group(1).replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
        if raw != "pending":
            break
    assert raw != "pending", f"{page.name}: the page did not finish loading within the time budget"
    result = json.loads(raw)
    assert "error" not in result, f"{page.name}: probe failed: {result['error']}"
    return result


EXTERNAL = re.compile(r"^(https?:)?//", re.I)


class _AssetScan(HTMLParser):
    def __init__(self):
        super().__init__()
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src") and EXTERNAL.match(a["src"]):
            self.external.append(f"<script src={a['src']}>")
        rel = (a.get("rel") or "").lower().split()
        if tag == "link" and a.get("href") and EXTERNAL.match(a["href"]) and (
            "stylesheet" in rel or "preload" in rel or "modulepreload" in rel
        ):
            self.external.append(f"<link rel={a.get('rel')} href={a['href']}>")


def test_no_page_loads_scripts_or_styles_from_the_network():
    offenders = {}
    for html in sorted(HTML_DIR.rglob("*.html")):
        scan = _AssetScan()
        scan.feed(html.read_text(encoding="utf-8", errors="replace"))
        if scan.external:
            offenders[str(html.relative_to(HTML_DIR))] = scan.external
    assert not offenders, f"pages loading remote scripts/stylesheets: {offenders}"


def test_mathjax_is_served_locally():
    assert (HTML_DIR / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000


@pytest.mark.parametrize("doc", PAGES)
def test_page_renders(doc: str, tmp_path: Path):
    page = HTML_DIR / f"{doc}.html"
    assert page.exists(), f"{page} missing: rebuild the book (make book)"
    source = page.read_text(encoding="utf-8")
    has_math = re.search(r'class="math[ "]', source) is not None

    # 1. Rendered DOM: math typeset, no raw TeX left.
    dom = _run_chromium(page.as_uri(), tmp_path / "profile-dom")
    scan = _DomScan()
    scan.feed(dom)
    text = " ".join(scan.text)
    if has_math:
        assert scan.mjx > 0, f"{doc}: no mjx-container in the rendered page (MathJax did not run)"
        assert scan.math_unrendered == 0, (
            f"{doc}: {scan.math_unrendered} of {scan.math_total} math elements were not typeset")
        assert scan.merror == 0, f"{doc}: {scan.merror} MathJax errors (mjx-merror)"
    for raw in ("$$", "\\(", "\\["):
        assert raw not in text, f"{doc}: raw TeX delimiter {raw!r} left in the page text"

    # 2. Image files exist and decode.
    from PIL import Image

    for src in scan.images:
        if src.startswith("data:"):
            continue
        assert src and not EXTERNAL.match(src), f"{doc}: remote or empty image src {src!r}"
        path = (page.parent / src.split("#")[0].split("?")[0]).resolve()
        assert path.is_file() and path.stat().st_size > 0, f"{doc}: image {src} missing or empty"
        if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".webp"}:
            with Image.open(path) as im:
                im.load()  # full decode: raises on truncated or corrupt files
                assert im.size[0] > 0 and im.size[1] > 0, f"{doc}: image {src} is empty"

    # 3. In the browser: every image loaded, MathJax finished, nothing fetched remotely.
    result = _probe(page, tmp_path)
    if has_math:
        assert result["mathjax"] == "done", f"{doc}: MathJax state {result['mathjax']}"
        assert result["mjx"] > 0, f"{doc}: no mjx-container inside the probe iframe"
    broken = [i["src"] for i in result["images"]
              if not (i["complete"] and i["decoded"] and i["naturalWidth"] > 0)]
    assert not broken, f"{doc}: images that did not load in the browser: {broken}"
    remote = [u for u in result["resources"] if not u.startswith(("file:", "data:", "blob:"))]
    assert not remote, f"{doc}: fetched from the network: {remote}"

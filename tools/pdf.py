"""The printable book (``make pdf``): every built HTML page printed by headless Chromium, merged.

Why this route: ``jupyter-book build --builder singlehtml`` fails on sphinx-proof's propositions,
``pdfhtml`` downloads a browser, and LaTeX needs a TeX Live of several hundred megabytes. The HTML
pages of ``make book`` already have typeset math (offline MathJax), the figures and the numbering;
Chromium prints each of them as it renders it (offline, the theme's print stylesheet drops the
sidebars), and pypdf merges the pages in the order of ``_toc.yml`` behind a cover with the table of
contents, adds page numbers and a PDF outline (bookmarks by part and chapter).

Printed like a book (:func:`prepare_for_print`): the source of a folded code cell ("Show code cell
source") is left out, a folded output is unfolded, a code cell that shows no output is left out
(its code is in the HTML edition and the notebook), every tab of a tab set is printed, and every
page is A4. ``--page`` prints one page (the answer key) the same way, behind a cover, with page
numbers.

Usage (from the repository root)::

    python -m tools.pdf --html _build/html --out _build/pdf/book.pdf
    python -m tools.pdf --html _build/handouts/html --out _build/pdf/book-student.pdf --edition "Student edition"
    python -m tools.pdf --page _build/handouts/answer-key.html --out _build/handouts/answer-key.pdf \
        --title "Answer key" --edition "For instructors"
"""
from __future__ import annotations

import argparse
import datetime
import html as html_lib
import io
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Added to every printed page: A4, no navigation, solutions unfolded, no "¶" anchors.
PRINT_CSS = """
<style media="print">
@page { size: A4; margin: 15mm 14mm 18mm 14mm; }
.bd-header, .bd-header-announcement, .bd-sidebar-primary, .bd-sidebar-secondary, .header-article,
.prev-next-area, .prev-next-footer, .bd-footer, .bd-footer-article, .bd-footer-content,
#pst-back-to-top, .headerlink, .toggle-button, .search-button-field { display: none !important; }
.toggle-hidden, .dropdown .admonition-title ~ * { display: block !important; visibility: visible !important; }
.bd-main .bd-content .bd-article-container { max-width: 100% !important; }
body { zoom: 0.88; }
div.highlight pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
mjx-container[display="true"] { overflow: visible !important; }
figure, img, .cell_output img, table, .admonition { break-inside: avoid; }
h1, h2, h3 { break-after: avoid; }
.cell details > summary, .cell details.above-input { display: none !important; }
.sd-tab-set > label { display: block !important; font-weight: bold; margin-top: 0.8em; border: none !important; }
.sd-tab-set > .sd-tab-content { display: block !important; }
</style>
"""


def _has_visible_output(cell) -> bool:
    for out in cell.select(".cell_output"):
        if out.get_text(strip=True) or out.find(["img", "svg", "table", "mjx-container"]) is not None:
            return True
    return False


def prepare_for_print(html_text: str) -> str:
    """A built page made ready for paper: the print stylesheet, no folded code, no code-only cells.

    - the source of a cell tagged ``hide-input`` (a folded "Show code cell source" box) is removed;
    - a folded output (``hide-output``) and every other ``<details>`` box is printed open;
    - a code cell that shows no output (its output is empty or removed) is removed, so that no page
      holds only code;
    - the print stylesheet (A4, no navigation, solutions unfolded, every tab) is added.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html_text, "html.parser")
    for details in soup.select("details.above-input"):
        details.decompose()
    for details in soup.find_all("details"):
        details["open"] = ""
    for cell in soup.select("div.cell"):
        if not _has_visible_output(cell):
            cell.decompose()
    if soup.head is not None:
        soup.head.append(BeautifulSoup(PRINT_CSS, "html.parser"))
    return str(soup)


class PdfError(RuntimeError):
    pass


@dataclass
class Page:
    docname: str  # e.g. "notebooks/05_chaos"
    part: str  # caption of its part ("" for the root page)
    title: str = ""
    pdf: Path | None = None
    n_pages: int = 0


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise PdfError("Chromium not found: install it (Debian: apt-get install -y chromium)")


def print_to_pdf(url: str, out: Path, budget_ms: int = 15000) -> None:
    """Print one page with headless Chromium (offline; waits ``budget_ms`` of virtual time for MathJax)."""
    with tempfile.TemporaryDirectory(prefix="mfbook-chromium-") as profile:
        cmd = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--disable-background-networking", "--disable-extensions", f"--user-data-dir={profile}",
               f"--virtual-time-budget={budget_ms}", "--no-pdf-header-footer", f"--print-to-pdf={out}", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if not out.exists() or out.stat().st_size == 0:
        raise PdfError(f"Chromium did not print {url}:\n{proc.stderr[-2000:]}")


def toc_pages(root: Path = REPO_ROOT) -> list[Page]:
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [Page(str(toc["root"]), "")]
    for part in toc.get("parts", []):
        for chapter in part.get("chapters", []):
            pages.append(Page(str(chapter["file"]), str(part.get("caption", ""))))
    return pages


def _page_title(html_text: str, fallback: str) -> str:
    heads = re.findall(r"<h1[^>]*>(.*?)</h1>", html_text, re.S)
    heads = [h for h in heads if "headerlink" in h] or heads  # the page's title, not the theme's
    if not heads:
        return fallback
    m = re.match(r"(.*)", heads[0], re.S)
    text = re.sub(r"<a class=\"headerlink\".*?</a>", "", m.group(1), flags=re.S)
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", text))
    return " ".join(text.split()).replace("#", "").strip() or fallback


def _n_pages(path: Path) -> int:
    from pypdf import PdfReader

    return len(PdfReader(path).pages)


def _cover_html(title: str, author: str, edition: str, pages: list[Page], offset: int, note: str = "") -> str:
    rows, part = [], None
    number = offset + 1
    for page in pages:
        if page.part != part and page.part:
            rows.append(f"<tr><td colspan='2' class='part'>{html_lib.escape(page.part)}</td></tr>")
            part = page.part
        rows.append(f"<tr><td>{html_lib.escape(page.title)}</td><td class='num'>{number}</td></tr>")
        number += page.n_pages
    today = datetime.date.today().isoformat()
    return f"""<!DOCTYPE html><html><head><meta charset="utf-8"><style>
@page {{ size: A4; margin: 25mm 22mm; }}
body {{ font-family: sans-serif; color: #222; }}
.cover {{ height: 230mm; display: flex; flex-direction: column; justify-content: center; break-after: page; }}
.cover h1 {{ font-size: 26pt; line-height: 1.25; margin: 0 0 12mm 0; }}
.cover p {{ font-size: 13pt; margin: 2mm 0; }}
h2 {{ font-size: 18pt; }}
table {{ width: 100%; border-collapse: collapse; font-size: 11pt; }}
td {{ padding: 1.2mm 0; }} td.num {{ text-align: right; width: 15mm; }}
td.part {{ font-weight: bold; padding-top: 5mm; }}
</style></head><body>
<div class="cover"><h1>{html_lib.escape(title)}</h1><p>{html_lib.escape(author)}</p>
<p><b>{html_lib.escape(edition)}</b></p><p>{html_lib.escape(note)}</p>
<p>Printed {today} from the HTML edition (make pdf)</p></div>
{"<h2>Contents</h2><table>" + "".join(rows) + "</table>" if pages else ""}</body></html>"""


def _numbers_pdf(n: int, skip: int, workdir: Path) -> Path:
    """A PDF of ``n`` blank A4 pages carrying page numbers (none on the first ``skip`` pages)."""
    divs = "".join(
        f"<div class='p'><span>{i + 1 if i >= skip else ''}</span></div>" for i in range(n))
    html = ("<!DOCTYPE html><html><head><meta charset='utf-8'><style>@page { size: A4; margin: 0; }"
            "body { margin: 0; } .p { width: 210mm; height: 297mm; position: relative; break-after: page; }"
            ".p span { position: absolute; bottom: 8mm; width: 100%; text-align: center;"
            " font: 9pt sans-serif; color: #555; }</style></head><body>" + divs + "</body></html>")
    src = workdir / "numbers.html"
    src.write_text(html)
    out = workdir / "numbers.pdf"
    print_to_pdf(src.as_uri(), out, budget_ms=1000)
    return out


def pdf_title(book_title: str, edition: str = "") -> str:
    """The PDF's title: the book's, then the edition after a dash ("..., Student edition")."""
    return f"{book_title} \u2014 {edition}" if edition else book_title


def build_pdf(html_dir: Path, out: Path, edition: str = "", root: Path = REPO_ROOT, note: str = "") -> int:
    """Print the book in ``html_dir`` (a ``make book`` output) to ``out``; returns the page count."""
    from pypdf import PdfReader, PdfWriter

    config = yaml.safe_load((root / "_config.yml").read_text())
    pages = toc_pages(root)
    with tempfile.TemporaryDirectory(prefix="mfbook-pdf-") as tmp:
        work = Path(tmp)
        site = work / "html"
        shutil.copytree(html_dir, site)
        for i, page in enumerate(pages):
            src = site / f"{page.docname}.html"
            if not src.exists():
                raise PdfError(f"{src} is missing: build the book first (make book)")
            text = src.read_text(encoding="utf-8")
            page.title = _page_title(text, page.docname)
            src.write_text(prepare_for_print(text), encoding="utf-8")
            page.pdf = work / f"{i:02d}.pdf"
            print(f"  printing {page.docname}", flush=True)
            print_to_pdf(src.as_uri(), page.pdf)
            page.n_pages = _n_pages(page.pdf)
        # cover + contents: print once to learn its length, again with the right page numbers
        cover = work / "cover.html"
        cover_pdf = work / "cover.pdf"
        n_cover = 2
        for _ in range(3):
            cover.write_text(_cover_html(config.get("title", ""), config.get("author", ""), edition, pages, n_cover, note))
            print_to_pdf(cover.as_uri(), cover_pdf, budget_ms=1000)
            if _n_pages(cover_pdf) == n_cover:
                break
            n_cover = _n_pages(cover_pdf)

        writer = PdfWriter()
        writer.append(str(cover_pdf))
        start = n_cover
        parts: dict[str, object] = {}
        outline = []
        for page in pages:
            writer.append(str(page.pdf))
            outline.append((page, start))
            start += page.n_pages
        total = len(writer.pages)
        numbers = PdfReader(_numbers_pdf(total, n_cover, work))
        for page_obj, number_page in zip(writer.pages, numbers.pages):
            page_obj.merge_page(number_page)
        writer.add_outline_item("Contents", 1 if n_cover > 1 else 0)
        for page, first in outline:
            parent = None
            if page.part:
                if page.part not in parts:
                    parts[page.part] = writer.add_outline_item(page.part, first)
                parent = parts[page.part]
            writer.add_outline_item(page.title, first, parent=parent)
        writer.add_metadata({"/Title": pdf_title(config.get("title", ""), edition),
                             "/Author": config.get("author", "")})
        writer.page_mode = "/UseOutlines"
        out.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        writer.write(buffer)
        out.write_bytes(buffer.getvalue())
    print(f"PDF: {out} ({total} pages)")
    return total


def build_single(page_html: Path, out: Path, title: str, edition: str = "", note: str = "",
                 root: Path = REPO_ROOT) -> int:
    """Print one HTML page (e.g. the answer key) on A4 behind a cover, with page numbers."""
    from pypdf import PdfReader, PdfWriter

    config = yaml.safe_load((root / "_config.yml").read_text())
    if not page_html.exists():
        raise PdfError(f"{page_html} is missing")
    with tempfile.TemporaryDirectory(prefix="mfbook-pdf-") as tmp:
        work = Path(tmp)
        # printed from its own folder so that its relative links (stylesheets, MathJax) resolve
        printable = page_html.with_name(f".print-{page_html.name}")
        try:
            printable.write_text(prepare_for_print(page_html.read_text(encoding="utf-8")), encoding="utf-8")
            body = work / "body.pdf"
            print_to_pdf(printable.resolve().as_uri(), body)
        finally:
            printable.unlink(missing_ok=True)
        cover = work / "cover.html"
        cover.write_text(_cover_html(title, config.get("title", ""), edition, [], 0, note))
        cover_pdf = work / "cover.pdf"
        print_to_pdf(cover.as_uri(), cover_pdf, budget_ms=1000)
        writer = PdfWriter()
        writer.append(str(cover_pdf))
        n_cover = len(writer.pages)
        writer.append(str(body))
        total = len(writer.pages)
        numbers = PdfReader(_numbers_pdf(total, n_cover, work))
        for page_obj, number_page in zip(writer.pages, numbers.pages):
            page_obj.merge_page(number_page)
        writer.add_metadata({"/Title": pdf_title(title, edition), "/Author": config.get("author", "")})
        out.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        writer.write(buffer)
        out.write_bytes(buffer.getvalue())
    print(f"PDF: {out} ({total} pages)")
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the built book (or one page) to PDF with Chromium.")
    parser.add_argument("--html", type=Path, help="built HTML folder (e.g. _build/html)")
    parser.add_argument("--page", type=Path, help="print this single HTML file instead of a book")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--edition", default="", help='on the cover and in the PDF title, e.g. "Student edition"')
    parser.add_argument("--note", default="", help="a line under the edition on the cover")
    parser.add_argument("--title", default="", help="title of a single page's PDF (--page)")
    args = parser.parse_args(argv)
    try:
        if args.page:
            build_single(args.page, args.out, args.title or _page_title(args.page.read_text(encoding="utf-8"), args.page.stem),
                         args.edition, args.note)
        elif args.html:
            build_pdf(args.html, args.out, args.edition, note=args.note)
        else:
            parser.error("give --html or --page")
    except PdfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

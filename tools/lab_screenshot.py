r"""See an executed notebook as JupyterLab (with jupyterlab-myst) renders it: screenshots and text.

The book is built by Jupyter Book (myst-nb), but readers also open the chapters in JupyterLab, where
jupyterlab-myst renders the MyST Markdown and knows nothing of myst-nb's extensions: a ``{glue:...}``
directive shows as an "Unknown Directive" box, a ``{glue:text}`` role as its bare key, a
``{numref}``, ``{ref}`` or ``{cite}`` whose target is not in the notebook as a yellow warning ("Cross
Reference Not Found", "Citation Not Found"). This tool shows a person (or a test) what a reader of
one executed chapter sees there::

    MFBOOK_PROFILE=quick .venv/bin/papermill notebooks/01_model.ipynb /tmp/labshot/01_model.ipynb
    .venv/bin/python -m tools.lab_screenshot /tmp/labshot/01_model.ipynb --out /tmp/labshot/01_model.png \
        --text /tmp/labshot/01_model.txt [--height 6000] [--width 1280]

(the chapters executed by ``make book``, in ``_build/jupyter_execute/notebooks/``, serve as well).

Run it from the repository root with the project's Python (``.venv/bin/python -m tools.lab_screenshot``).
It copies the notebook into a fresh temporary directory, starts JupyterLab from this Python
environment on a free port of 127.0.0.1 (no token, no browser, that directory only, isolated
configuration and settings, no kernel, no news or update checks, extension manager read-only), waits
for the server (at most 60 s), opens the notebook in headless Chromium (driven over the DevTools
protocol, with tornado's WebSocket client, which JupyterLab already needs; host names do not
resolve, so nothing outside this machine is reached), turns JupyterLab's windowing off (the
``windowingMode: "none"`` notebook setting) so that every cell is rendered, and waits until every
cell is there and the page has stopped changing. Then it writes:

* ``--out PNG``: screenshots of the window (``--width`` x ``--height`` pixels). When the notebook is
  longer than one window, the notebook is scrolled and the following windows are written beside it
  as ``NAME-2.png``, ``NAME-3.png``, ... (older ``NAME-<n>.png`` files from a previous, longer run
  are removed). The paths written are printed, one per line.
* ``--text TXT``: the rendered text, cell by cell (``## cell 7 markdown``): a Markdown cell's
  rendered text, a code cell's source (``[input]``, from the notebook) and each output's visible
  text (``[output 0 text/markdown]``), with an ``[image WxH]`` line for each image shown. Math is
  written as its TeX source (``$K(1)$``), an unresolved reference as ``[Citation Not Found: key]``
  or ``[Cross Reference Not Found: label]``; the content of a folded dropdown (a solution) is not
  shown, as on screen. This is what a reader sees, as text: "Unknown Directive", "Not Found", a bare
  glue key or a figure without its caption can be searched for in it. A count of the first two is
  printed on standard error.

The copy is trusted before it is opened (as the outputs of a notebook the reader ran are);
``--untrusted`` shows it as a downloaded notebook that was never trusted. The server and the browser
are stopped in every case; ``--keep`` keeps the temporary directory (with ``server.log`` and
``chromium.log``) for inspection.

It takes about 15 s for a short notebook and 25 s for a chapter (two cores). Exit status: 0 done;
1 failure (no Chromium, the server not answering within 60 s, the notebook not rendered within
``--timeout`` seconds: in that last case the screenshots of what was shown are still written),
with a one-line message on standard error.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
from tornado.websocket import WebSocketClosedError, websocket_connect

SERVER_START_TIMEOUT = 60.0
CHROMIUM_START_TIMEOUT = 30.0
MAX_HEIGHT = 16000  # Chromium's screenshots of taller windows are unreliable
#: Notebook settings of the temporary JupyterLab: every cell rendered (no windowing), no blank space
#: after the last cell; notifications: no news, no update check.
USER_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "windowingMode": "none",
        "scrollPastEnd": False,
    },
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


class LabShotError(Exception):
    """A failure reported as one line."""


# --------------------------------------------------------------------------------------------------
# The browser side: what is evaluated in the page.

#: The state of the open notebook; ``null`` until a notebook panel is shown.
_STATE_JS = r"""
(() => {
  const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
      .find(p => !p.classList.contains('lm-mod-hidden') && p.offsetParent !== null);
  const dialog = document.querySelector('.jp-Dialog');
  const dialogText = dialog ? dialog.innerText.replace(/\s+/g, ' ').slice(0, 300) : null;
  if (!panel) return {panel: false, dialog: dialogText, url: location.href};
  const nb = panel.querySelector('.jp-Notebook');
  const cells = nb ? [...nb.querySelectorAll('.jp-Cell')] : [];
  const md = cells.filter(c => c.classList.contains('jp-MarkdownCell'));
  const imgs = nb ? [...nb.querySelectorAll('img')] : [];
  const scroller = panel.querySelector('.jp-WindowedPanel-outer') || nb;
  return {
    panel: true,
    dialog: dialogText,
    cells: cells.length,
    markdown: md.length,
    markdownRendered: md.filter(c => c.classList.contains('jp-mod-rendered')).length,
    imagesPending: imgs.filter(i => !i.complete).length,
    images: imgs.length,
    textLength: nb ? nb.innerText.length : 0,
    scrollHeight: scroller ? scroller.scrollHeight : 0,
    clientHeight: scroller ? scroller.clientHeight : 0,
  };
})()
"""

#: Scroll the notebook to ``top`` (pixels); returns the position reached.
_SCROLL_JS = r"""
((top) => {
  const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
      .find(p => !p.classList.contains('lm-mod-hidden') && p.offsetParent !== null);
  const nb = panel.querySelector('.jp-Notebook');
  const scroller = panel.querySelector('.jp-WindowedPanel-outer') || nb;
  scroller.scrollTop = top;
  return scroller.scrollTop;
})(%d)
"""

#: The rendered text, cell by cell. Run after the screenshots: it rewrites the page (KaTeX math
#: becomes its TeX source between dollars, an unresolved reference ``[Citation Not Found: key]``).
_TEXT_JS = r"""
(() => {
  const panel = [...document.querySelectorAll('.jp-NotebookPanel')]
      .find(p => !p.classList.contains('lm-mod-hidden') && p.offsetParent !== null);
  const nb = panel.querySelector('.jp-Notebook');
  for (const k of [...nb.querySelectorAll('.katex')]) {
    if (!k.isConnected) continue;
    const tex = k.querySelector('annotation[encoding="application/x-tex"]');
    const display = k.closest('.katex-display');
    const span = document.createElement(display ? 'div' : 'span');
    span.textContent = tex ? (display ? `$$${tex.textContent}$$` : `$${tex.textContent}$`) : k.innerText;
    (display || k).replaceWith(span);
  }
  for (const a of [...nb.querySelectorAll('.myst a[aria-label="Link to this Section"]')]) a.remove();
  for (const u of [...nb.querySelectorAll('.myst [title$="Not Found"]')]) {
    u.textContent = `[${u.title}: ${u.textContent.trim()}]`;
  }
  const clean = s => (s || '').replace(/\u00a0/g, ' ').replace(/[ \t]+\n/g, '\n')
      .replace(/\n{3,}/g, '\n\n').trim();
  const images = el => [...el.querySelectorAll('img')].filter(i => i.offsetParent !== null)
      .map(i => `[image ${i.naturalWidth}x${i.naturalHeight}]`);
  const visible = el => !!el && el.offsetParent !== null;
  return [...nb.querySelectorAll('.jp-Cell')].map(cell => {
    const kind = cell.classList.contains('jp-MarkdownCell') ? 'markdown'
        : cell.classList.contains('jp-CodeCell') ? 'code' : 'raw';
    const inputHidden = visible(cell.querySelector('.jp-InputPlaceholder'))
        || !visible(cell.querySelector('.jp-Cell-inputArea'));
    const cellInfo = {kind, inputHidden, rendered: null, outputs: []};
    if (kind === 'markdown' && cell.classList.contains('jp-mod-rendered')) {
      const root = cell.querySelector('.jp-Cell-inputArea > .myst, .jp-MarkdownOutput');
      if (root) cellInfo.rendered = [clean(root.innerText), ...images(root)].filter(Boolean).join('\n');
    }
    for (const child of cell.querySelectorAll('.jp-OutputArea-child')) {
      const output = child.querySelector('.jp-OutputArea-output') || child;
      cellInfo.outputs.push({
        mime: output.dataset.mimeType || '',
        hidden: !visible(output),
        text: clean(output.innerText),
        images: images(output),
      });
    }
    if (cell.querySelector('.jp-OutputPlaceholder') && visible(cell.querySelector('.jp-OutputPlaceholder')))
      cellInfo.outputsHidden = true;
    return cellInfo;
  });
})()
"""


def format_text(cells: list[dict], nb) -> str:
    """The rendered cells as text; a code cell's source is taken from the notebook."""
    blocks = []
    for i, info in enumerate(cells):
        lines = [f"## cell {i} {info['kind']}"]
        source = nb.cells[i].source if i < len(nb.cells) else ""
        if info["kind"] == "markdown":
            lines.append(info["rendered"] if info["rendered"] is not None else "[not rendered]\n" + source)
        else:
            lines += ["[input hidden]"] if info["inputHidden"] else ["[input]", source]
            if info.get("outputsHidden"):
                lines.append("[outputs hidden]")
            for k, out in enumerate(info["outputs"]):
                lines.append(f"[output {k} {out['mime']}]" + (" (hidden)" if out["hidden"] else ""))
                lines += [t for t in [out["text"], *out["images"]] if t]
        blocks.append("\n".join(lines).rstrip())
    return "\n\n".join(blocks) + "\n"


#: Marks in the rendered text of what a reader should not see, counted in the summary.
WARNING_MARKS = ("Unknown Directive", "Not Found:", "[not rendered]")


# --------------------------------------------------------------------------------------------------
# Processes

def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise LabShotError("Chromium not found: install it (Debian: apt-get install -y chromium)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def http(url: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=b"" if method != "GET" else None)
    try:
        with _LOCAL.open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def jupyter_env(tmp: Path) -> dict[str, str]:
    """The environment of the temporary JupyterLab: this Python's extensions, nothing of the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_TOKEN", "JUPYTERHUB"))}
    share = str(Path(sys.prefix) / "share" / "jupyter")
    path = [p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    env["JUPYTER_PATH"] = os.pathsep.join([share] + [p for p in path if p != share])
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        env[var] = str(tmp / sub)
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    return env


def start_server(tmp: Path, root: Path, env: dict[str, str], log) -> tuple[subprocess.Popen, int]:
    settings = tmp / "user-settings"
    for rel, values in USER_SETTINGS.items():
        target = settings / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2) + "\n")
    (tmp / "workspaces").mkdir(exist_ok=True)
    # No announcements fetched (a null URL can only be given in a configuration file).
    (tmp / "config" / "jupyter_lab_config.json").write_text(json.dumps({"LabApp": {"news_url": None}}) + "\n")
    port = free_port()
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False", "--ServerApp.allow_root=True",
        "--ServerApp.allow_remote_access=False", "--IdentityProvider.token=",
        "--ServerApp.disable_check_xsrf=True", f"--ServerApp.root_dir={root}",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
        "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.notebook_starts_kernel=False",
    ]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabShotError(f"JupyterLab exited at start (status {proc.returncode}); "
                               f"log: {tmp / 'server.log'} (kept with --keep)")
        try:
            if http(f"http://127.0.0.1:{port}/api/status", timeout=2.0)[0] == 200:
                return proc, port
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    stop_server(proc, port)
    raise LabShotError(f"JupyterLab did not answer on port {port} within {SERVER_START_TIMEOUT:.0f} s")


def stop_server(proc: subprocess.Popen, port: int) -> None:
    """Shut the server down through its API (it stops its kernels); signals if it does not stop."""
    if proc.poll() is None:
        try:
            http(f"http://127.0.0.1:{port}/api/shutdown", method="POST", timeout=5.0)
        except (OSError, urllib.error.URLError):
            pass
    for sig, wait in ((None, 10.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if sig is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def start_chromium(tmp: Path, width: int, height: int, log) -> tuple[subprocess.Popen, int]:
    profile = tmp / "chromium-profile"
    profile.mkdir()
    cmd = [
        find_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--no-default-browser-check", "--disable-extensions", "--disable-sync",
        "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
        "--mute-audio", "--hide-scrollbars", "--force-device-scale-factor=1",
        # Offline: no host name resolves and no address but 127.0.0.1 is reached.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}", f"--window-size={width},{height}",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank",
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    active = profile / "DevToolsActivePort"
    deadline = time.monotonic() + CHROMIUM_START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabShotError(f"Chromium exited at start (status {proc.returncode}); "
                               f"log: {tmp / 'chromium.log'} (kept with --keep)")
        lines = active.read_text().split() if active.exists() else []
        if len(lines) >= 2:
            return proc, int(lines[0])
        time.sleep(0.2)
    stop_chromium(proc)
    raise LabShotError(f"Chromium did not open its DevTools port within {CHROMIUM_START_TIMEOUT:.0f} s")


def stop_chromium(proc: subprocess.Popen) -> None:
    """Stop Chromium (normally closed already over DevTools, so that it reaps its own helpers)."""
    for sig, wait in ((None, 5.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        if sig is not None and proc.poll() is None:
            try:  # the main process first: it stops its renderer and helper processes
                os.kill(proc.pid, sig) if sig == signal.SIGTERM else os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # whatever is left of its process group
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------------------
# DevTools protocol

class Page:
    """A minimal DevTools protocol client of one page (tornado's WebSocket client)."""

    def __init__(self, connection):
        self._conn = connection
        self._next_id = 0

    @classmethod
    async def open(cls, devtools_port: int) -> "Page":
        status, body = http(f"http://127.0.0.1:{devtools_port}/json/list")
        targets = [t for t in json.loads(body or b"[]") if t.get("type") == "page"] if status == 200 else []
        if not targets:
            status, body = http(f"http://127.0.0.1:{devtools_port}/json/new?about:blank", method="PUT")
            targets = [json.loads(body)] if status == 200 else []
        if not targets:
            raise LabShotError("Chromium has no page to drive")
        conn = await websocket_connect(targets[0]["webSocketDebuggerUrl"], max_message_size=1 << 30)
        return cls(conn)

    async def call(self, method: str, timeout: float = 60.0, **params) -> dict:
        self._next_id += 1
        call_id = self._next_id
        try:
            await self._conn.write_message(json.dumps({"id": call_id, "method": method, "params": params}))
        except WebSocketClosedError:
            raise LabShotError("Chromium closed the DevTools connection") from None

        async def reply() -> dict:
            while True:
                message = await self._conn.read_message()  # None once closed
                if message is None:
                    raise LabShotError("Chromium closed the DevTools connection")
                data = json.loads(message)
                if data.get("id") == call_id:
                    if "error" in data:
                        raise LabShotError(f"DevTools {method}: {data['error'].get('message')}")
                    return data.get("result", {})

        try:
            return await asyncio.wait_for(reply(), timeout)
        except asyncio.TimeoutError:
            raise LabShotError(f"DevTools {method}: no answer within {timeout:.0f} s") from None

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        if "exceptionDetails" in result:
            detail = result["exceptionDetails"]
            description = detail.get("exception", {}).get("description", detail)
            raise LabShotError(f"script error in the page: {description}")
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path) -> None:
        result = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        path.write_bytes(base64.b64decode(result["data"]))

    def close(self) -> None:
        self._conn.close()


async def wait_rendered(page: Page, cells: int, timeout: float, settle: float = 2.0) -> dict:
    """Wait until the notebook shows all its cells, Markdown rendered, images loaded, and nothing
    changes for ``settle`` seconds (math typesetting, late outputs). Returns the last state."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    state: dict = {}
    while time.monotonic() < deadline:
        state = await page.evaluate(_STATE_JS) or {}
        if str(state.get("url", "")).startswith("chrome-error:"):
            raise LabShotError("Chromium could not load JupyterLab's page")
        complete = (state.get("panel") and state.get("cells") == cells
                    and state.get("markdownRendered") == state.get("markdown")
                    and state.get("imagesPending") == 0)
        key = (state.get("cells"), state.get("textLength"), state.get("scrollHeight"), state.get("images"))
        if key != last:
            last, since = key, time.monotonic()
        elif complete and time.monotonic() - since >= settle:
            return state
        await asyncio.sleep(0.5)
    problem = state.get("dialog") and f"a dialog is open: {state['dialog']!r}"
    if not problem:
        problem = ("no notebook shown" if not state.get("panel") else
                   f"{state.get('cells')} of {cells} cells, {state.get('markdownRendered')} of "
                   f"{state.get('markdown')} Markdown cells rendered, {state.get('imagesPending')} images loading")
    raise LabShotError(f"the notebook was not rendered within {timeout:.0f} s ({problem})")


def page_paths(out: Path, count: int) -> list[Path]:
    return [out] + [out.with_name(f"{out.stem}-{k}{out.suffix}") for k in range(2, count + 1)]


def remove_stale_pages(out: Path, count: int) -> None:
    pattern = re.compile(rf"^{re.escape(out.stem)}-(\d+){re.escape(out.suffix)}$")
    for old in out.parent.glob(f"{out.stem}-*{out.suffix}"):
        match = pattern.match(old.name)
        if match and int(match.group(1)) > count:
            old.unlink()


async def capture(devtools_port: int, url: str, nb, args) -> list[Path]:
    page = await Page.open(devtools_port)
    try:
        await page.call("Emulation.setDeviceMetricsOverride", width=args.width, height=args.height,
                        deviceScaleFactor=1, mobile=False)
        await page.call("Page.navigate", url=url)
        failure = None
        try:
            state = await wait_rendered(page, len(nb.cells), args.timeout)
        except LabShotError as exc:  # still show what is there
            failure, state = exc, (await page.evaluate(_STATE_JS) or {})
        # One window after the other: the notebook scrolls inside JupyterLab's fixed-size shell.
        scroll_height, view = state.get("scrollHeight", 0), max(1, state.get("clientHeight", 0))
        pages = 1 if not state.get("panel") else min(args.max_pages, max(1, -(-scroll_height // view)))
        paths = page_paths(args.out, pages)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        for k, path in enumerate(paths):
            if state.get("panel"):
                await page.evaluate(_SCROLL_JS % (k * view))
                await asyncio.sleep(0.3)
            await page.screenshot(path)
        remove_stale_pages(args.out, pages)
        if args.text and state.get("panel"):
            text = format_text(await page.evaluate(_TEXT_JS), nb)
            args.text.parent.mkdir(parents=True, exist_ok=True)
            args.text.write_text(text)
            marks = ", ".join(f"{text.count(m)} x {m!r}" for m in WARNING_MARKS if m in text)
            if marks:
                print(f"lab_screenshot: the rendered text shows {marks}", file=sys.stderr)
        if failure:
            raise failure
        return paths
    finally:
        try:
            await page.call("Browser.close", timeout=5.0)
        except Exception:  # noqa: BLE001 - the connection closes with the browser
            pass
        page.close()


# --------------------------------------------------------------------------------------------------

def run(args) -> list[Path]:
    source = args.notebook
    if not source.is_file():
        raise LabShotError(f"no such notebook: {source}")
    try:
        nb = nbformat.read(source, as_version=4)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one message
        raise LabShotError(f"cannot read {source}: {exc}") from exc
    find_chromium()  # fail before starting anything
    tmp = Path(tempfile.mkdtemp(prefix="labshot-"))
    server = chromium = None
    server_log, chromium_log = open(tmp / "server.log", "wb"), open(tmp / "chromium.log", "wb")
    try:
        root = tmp / "root"
        root.mkdir()
        name = re.sub(r"[^A-Za-z0-9._-]", "_", source.name)
        shutil.copyfile(source, root / name)
        env = jupyter_env(tmp)
        if not args.untrusted:
            from nbformat.sign import NotebookNotary

            notary = NotebookNotary(data_dir=env["JUPYTER_DATA_DIR"])
            notary.sign(nb)
            notary.store.close()
        server, port = start_server(tmp, root, env, server_log)
        chromium, devtools_port = start_chromium(tmp, args.width, args.height, chromium_log)
        url = f"http://127.0.0.1:{port}/{args.view}/tree/{name}"
        return asyncio.run(capture(devtools_port, url, nb, args))
    finally:
        if chromium is not None:
            stop_chromium(chromium)
        if server is not None:
            stop_server(server, port)
        server_log.close()
        chromium_log.close()
        if args.keep:
            print(f"kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.lab_screenshot",
        description="Screenshots and rendered text of an executed notebook as JupyterLab (with "
                    "jupyterlab-myst) shows it, in headless Chromium.")
    parser.add_argument("notebook", type=Path, help="the notebook (.ipynb), e.g. an executed chapter")
    parser.add_argument("--out", type=Path, required=True,
                        help="the PNG of the first window; later windows go to NAME-2.png, NAME-3.png, ...")
    parser.add_argument("--text", type=Path, default=None, help="write the rendered text, cell by cell, here")
    parser.add_argument("--height", type=int, default=6000, help="window height in pixels (default 6000)")
    parser.add_argument("--width", type=int, default=1280, help="window width in pixels (default 1280)")
    parser.add_argument("--max-pages", type=int, default=50, help="at most this many windows (default 50)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds to wait for the notebook to render (default 180)")
    parser.add_argument("--view", choices=("doc", "lab"), default="doc",
                        help="JupyterLab's single-document view (doc, default) or the full lab view")
    parser.add_argument("--untrusted", action="store_true", help="do not trust the notebook's outputs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    args = parser.parse_args(argv)
    if not 200 <= args.height <= MAX_HEIGHT or not 320 <= args.width <= 4000:
        parser.error(f"--height must be within 200..{MAX_HEIGHT} and --width within 320..4000")
    started = time.monotonic()
    try:
        paths = run(args)
    except (LabShotError, OSError) as exc:
        print(f"lab_screenshot: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab_screenshot: interrupted", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    if args.text:
        print(args.text)
    print(f"lab_screenshot: {len(paths)} window(s) in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

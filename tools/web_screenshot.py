"""Screenshot of export/web running a model, for the README (docs/web_app.png).

    python tools/web_screenshot.py MODEL.onnx docs/web_app.png [--query "label=all&n=8&seed=3"] [--image IMG]

Serves export/web and the model from 127.0.0.1, opens the page in headless
chromium (Playwright), waits for the first result and saves a screenshot.
Needs what tools/ci_web.sh installs.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import tempfile
import threading
from pathlib import Path

WEB = Path(__file__).resolve().parents[1] / "export" / "web"


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--query", default="")
    p.add_argument("--image")
    p.add_argument("--chromium", default="/usr/lib/chromium/chromium")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp())
    shutil.copytree(WEB, root / "web", ignore=shutil.ignore_patterns("node_modules"))
    shutil.copy(args.model, root / "web" / "model.onnx")
    query = f"model=model.onnx&backend=wasm&{args.query}"
    if args.image:
        shutil.copy(args.image, root / "web" / "input.png")
        query += "&image=input.png"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root / "web"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 760})
        page.goto(f"http://127.0.0.1:{server.server_port}/?{query}")
        page.wait_for_function("!!window.condganResult", timeout=120_000)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
        browser.close()
    server.shutdown()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

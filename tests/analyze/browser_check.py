"""Opens a netrec report in headless Chromium (Debian's) through Playwright and
prints, as JSON: console errors and page errors, every request the page made,
the number of charts, and how far the screenshot is from blank (its pixels'
standard deviation)."""
import json
import sys

from PIL import Image, ImageStat
from playwright.sync_api import sync_playwright

path, shot = sys.argv[1], sys.argv[2]
errors, requests = [], []
with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium",
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    )
    page = browser.new_page(viewport={"width": 1100, "height": 1400})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto("file://" + path)
    page.wait_for_load_state("networkidle")
    charts = page.eval_on_selector_all("svg", "els => els.length")
    page.screenshot(path=shot, full_page=True)
    browser.close()
img = Image.open(shot).convert("L")
print(json.dumps({"errors": errors, "requests": requests, "charts": charts,
                  "stddev": ImageStat.Stat(img).stddev[0], "size": img.size}))

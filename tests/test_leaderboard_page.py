"""The static leaderboard page in a real headless Chromium: loads from a file URL without console
errors, sorts a table when a header is clicked, and shows hostile submission strings as text."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from w2sbench.cli import main

REPO = Path(__file__).resolve().parents[1]
HOSTILE = '<img src=x onerror="window.__pwned=1">'


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("the page test needs Debian's chromium and chromium-driver: run `bash scripts/setup.sh --dev`")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(data_dir, tmp_path) -> Path:
    """The board built from the shipped submissions plus a copy whose strings are HTML."""
    subs = tmp_path / "submissions"
    subs.mkdir()
    shipped = sorted((REPO / "leaderboards" / "submissions").glob("*.json"))
    assert shipped, "leaderboards/submissions/ must hold at least one submission"
    for path in shipped:
        shutil.copy(path, subs / path.name)
    doc = json.loads(shipped[0].read_text())
    doc["name"] = "hostile-copy"
    doc["entries"] = doc["entries"][:1]
    doc["entries"][0]["pair"] = "<script>window.__pwned=2</script>"
    doc["entries"][0]["models"]["strong"]["name"] = HOSTILE
    (subs / "hostile-copy.json").write_text(json.dumps(doc))
    out = tmp_path / "board"
    out.mkdir()
    assert main(["leaderboard", "build", "--submissions", str(subs), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    return out / "index.html"


def _column(table, index: int) -> list[str]:
    return [row.find_elements("tag name", "td")[index].get_attribute("data-value") for row in table.find_elements("css selector", "tbody tr")]


def test_page_loads_from_a_file_url_sorts_and_escapes(browser, page):
    browser.get(page.as_uri())
    assert browser.title == "w2sbench leaderboard"
    table = browser.find_element("css selector", "table.board")
    headers = table.find_elements("css selector", "thead th")
    names = [h.text.replace("\n", "") for h in headers]
    col = next(i for i, n in enumerate(names) if n.startswith("accuracy"))
    before = [float(v) for v in _column(table, col)]
    ranks = [str(i) for i in range(1, len(before) + 1)]
    assert len(before) >= 4 and _column(table, 0) == ranks  # rows start in board order

    headers[0].click()
    headers[0].click()  # second click: descending, a guaranteed reordering
    assert headers[0].get_attribute("aria-sort") == "descending"
    assert _column(table, 0) == ranks[::-1]

    headers[col].click()
    assert headers[col].get_attribute("aria-sort") == "ascending"
    ascending = [float(v) for v in _column(table, col)]
    assert ascending == sorted(before)
    headers[col].click()
    assert headers[col].get_attribute("aria-sort") == "descending"
    assert [float(v) for v in _column(table, col)] == sorted(before, reverse=True)

    strategy = names.index("strategy")
    headers[strategy].click()
    texts = [row.find_elements("tag name", "td")[strategy].text for row in table.find_elements("css selector", "tbody tr")]
    assert texts == sorted(texts)

    # Hostile strings are shown as text and never run.
    assert browser.execute_script("return window.__pwned === undefined")
    assert HOSTILE in table.text
    assert not browser.find_elements("css selector", "td img")
    assert len(browser.find_elements("css selector", "section svg circle")) >= len(before)

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors

"""The static leaderboard page in a real headless Chromium: loads from a file URL without console
errors, sorts a table when a header is clicked, shows hostile submission strings as text, and fits a
desktop (1400 px) and a phone (390 px) window with its findings, gap plot and tables present.

Screenshots go to $W2SBENCH_SCREENSHOTS when set (to look at them), else to the test's temp folder."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.board_rows import synthetic_boards
from w2sbench.cli import main
from w2sbench.leaderboard._board import render_html

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


@pytest.fixture(scope="module")
def page(data_dir, tmp_path_factory) -> Path:
    """The board built from the shipped submissions plus a copy whose strings are HTML."""
    tmp_path = tmp_path_factory.mktemp("page")
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
    # the table of the property the hostile copy belongs to: it holds the shipped rows plus the copy's
    hostile_property = json.loads((page.parent.parent / "submissions" / "hostile-copy.json").read_text())["entries"][0]["property"]
    table = browser.find_element("css selector", f"table#table-{hostile_property}")
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


@pytest.fixture(scope="module")
def synthetic_page(tmp_path_factory) -> Path:
    """A page from synthetic rows: two properties, three entries, defined gap ratios and a † score."""
    path = tmp_path_factory.mktemp("synthetic") / "index.html"
    path.write_text(render_html(synthetic_boards(), ["lab-a", "lab-b"]))
    return path


def _screenshot(browser, name: str, width: int, fallback: Path) -> None:
    folder = Path(os.environ.get("W2SBENCH_SCREENSHOTS") or fallback)
    folder.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, min(int(height) + 150, 8000))
    browser.save_screenshot(str(folder / f"{name}-{width}.png"))


def _check_layout_and_sections(browser, sections: int) -> None:
    inner = browser.execute_script("return window.innerWidth")
    # Nothing widens the page: wide tables and plots scroll inside their own container.
    assert browser.execute_script("return document.documentElement.scrollWidth") <= inner
    right = browser.execute_script(
        "return Math.max.apply(null, Array.prototype.map.call(document.querySelectorAll('.scroll, table, svg, p'),"
        " function(e){var b=e.closest('.scroll')||e; return b.getBoundingClientRect().right;}))"
    )
    assert right <= inner + 0.5
    assert "This board rests on" in browser.find_element("css selector", "p.basis").text
    found = browser.find_elements("css selector", "section")
    assert len(found) == sections
    for section in found:
        ident = section.get_attribute("id")
        assert section.find_element("id", f"findings-{ident}").text.startswith("Findings")
        assert section.find_elements("css selector", "table.findings tbody tr")
        assert section.find_elements("css selector", "svg.gap")
        assert section.find_elements("css selector", "table.board tbody tr")


@pytest.mark.parametrize("width", [1400, 390])
def test_page_fits_desktop_and_phone_with_findings_and_sorting(browser, page, synthetic_page, width, tmp_path):
    browser.set_window_size(width, 900)
    browser.get(page.as_uri())
    shipped = {e["property"] for f in (REPO / "leaderboards" / "submissions").glob("*.json")
               for e in json.loads(f.read_text())["entries"]}
    _check_layout_and_sections(browser, sections=len(shipped))  # one section per property on the board
    _screenshot(browser, "shipped", width, tmp_path)

    browser.set_window_size(width, 900)
    browser.get(synthetic_page.as_uri())
    _check_layout_and_sections(browser, sections=2)
    adversarial = browser.find_element("id", "adversarial")
    verdicts = [td.text for td in adversarial.find_elements("css selector", "table.findings td.verdict")]
    assert verdicts[:2] == ["better", "better"]  # robust accuracy: weak-tft and weak-wts-tft above vanilla
    assert "not recomputed by the validator" in adversarial.find_element("css selector", "p.unverified").text
    assert len(browser.find_elements("css selector", "#fairness svg.gap circle")) == 4  # vanilla's ratio is undefined
    assert "undefined on every seed" in browser.find_element("css selector", "#fairness svg.gap").text

    table = adversarial.find_element("css selector", "table.board")
    headers = table.find_elements("css selector", "thead th")
    strategy = [h.text for h in headers].index("strategy")
    headers[strategy].click()
    headers[strategy].click()
    texts = [row.find_elements("tag name", "td")[strategy].get_attribute("textContent") for row in table.find_elements("css selector", "tbody tr")]
    assert texts == sorted(texts, reverse=True) and headers[strategy].get_attribute("aria-sort") == "descending"
    _screenshot(browser, "synthetic", width, tmp_path)

    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors

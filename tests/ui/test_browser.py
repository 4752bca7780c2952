"""A real headless Chromium clicks through the dashboard on a real server.

Debian's `chromium` and `chromium-driver` (installed by `make test` when it can), driven
by Selenium with both paths given, so Selenium Manager never downloads anything. Any
SEVERE browser console entry (a script error, a failed or blocked load) fails the test.
Screenshots go to `$SHOPKEEPER_TEST_ARTIFACTS` (default `tests/artifacts/`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shopkeeper.serve._process import running_server
from tests.ui.conftest import auth

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(
    os.environ.get("SHOPKEEPER_TEST_ARTIFACTS") or Path(__file__).parents[1] / "artifacts"
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason="needs Debian's chromium and chromium-driver (/usr/bin/chromium, "
        "/usr/bin/chromedriver): apt-get install chromium chromium-driver",
    ),
]


@pytest.fixture
def server(home: Path, keys: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """`shopkeeper serve` on a free loopback port; its URL."""
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log, running_server(home, log=log) as s:
        yield s.url
    text = log_path.read_text(errors="replace")
    for key in keys.values():
        assert key not in text, "the server logged an API key"


@pytest.fixture
def driver() -> Iterator[Any]:
    """Headless Chromium through the system chromedriver, console log captured."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-extensions",
        "--no-first-run",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


class Browser:
    """The driver plus console checks and screenshots."""

    def __init__(self, driver: Any, url: str) -> None:
        self.d, self.url = driver, url
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def open(self, path: str) -> None:
        self.d.get(self.url + path)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.d.find_elements(By.CSS_SELECTOR, selector))

    def wait_for(self, selector: str, timeout: float = 10) -> Any:
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support import expected_conditions as ec
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.d, timeout).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, selector))
        )

    def check(self, name: str) -> None:
        """Save a screenshot; fail on any SEVERE console entry since the last check."""
        self.d.save_screenshot(str(ARTIFACTS / f"ui-{name}.png"))
        severe = [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, f"browser console errors on {name}: {severe}"


def test_click_through_catalog_asset_lineage_playground(server, driver, keys):
    b = Browser(driver, server)
    b.open("/ui/")
    assert "/ui/login" in driver.current_url
    b.check("login")
    b.css("#key").send_keys(keys["admin"])
    b.css("#login-submit").click()
    b.wait_for("#catalog")
    assert driver.current_url.rstrip("/").endswith("/ui")
    assert b.css("#role").text == "admin"
    names = [a.text for a in b.all("#catalog a.asset-link")]
    assert {"events", "items", "users", "rec_model", "item_index"} <= set(names)
    assert not any(
        c["name"] == "shopkeeper_key" and not c["httpOnly"] for c in driver.get_cookies()
    )
    assert driver.execute_script("return document.cookie") == ""  # HttpOnly: scripts cannot read it
    b.css("#filter").send_keys("item")  # the filter hides the rest
    visible = [r for r in b.all("#catalog tbody tr") if r.is_displayed()]
    assert visible
    assert all("item" in r.text for r in visible)
    b.css("#filter").clear()
    b.css("#filter").send_keys(" ")  # fires input; everything back
    b.all("#catalog th")[4].click()  # sort by rows, ascending
    rows = [
        int(r.find_element("css selector", "td:nth-child(5)").text.replace(",", ""))
        for r in b.all("#catalog tbody tr")
        if r.is_displayed()
    ]
    assert rows == sorted(rows)
    b.check("catalog")

    next(a for a in b.all("#catalog a.asset-link") if a.text == "events").click()
    b.wait_for("#schema")
    assert "events" in b.css("h1").text
    assert "pseudonymized" in b.css("#schema").text
    assert b.all("#sample tbody tr")
    assert "missing_user_id" in b.css("#quarantine-counts").text
    assert b.all("svg.chart")
    b.check("asset-events")
    b.css("#quarantine-counts a").click()
    b.wait_for("#quarantine-rows")
    assert "InvoiceNo=" in b.css("#quarantine-rows").text
    b.check("asset-events-quarantine")

    b.open("/ui/assets/users")
    b.wait_for("#sample")
    assert "[encrypted]" in b.css("#sample").text
    assert "enc:v1" not in driver.page_source
    b.check("asset-users")

    b.open("/ui/assets/events")
    b.css("#lineage-link").click()
    b.wait_for("#lineage svg")
    assert "Lineage of" in b.css("h1").text
    labels = " ".join(t.text for t in b.all("#lineage .node-label"))
    assert "online-retail-2010-12.csv.gz" in labels
    assert "rec_model v1" in labels
    b.check("lineage-events")
    links = b.all("#lineage a")
    next(a for a in links if "rec_model" in (a.get_dom_attribute("href") or "")).click()
    b.wait_for("#lineage svg")
    assert "rec_model" in b.css("h1").text
    b.check("lineage-rec_model")

    b.css('nav a[data-nav="playground"]').click()
    b.wait_for("#play-form")
    b.css("#q").send_keys("lunch bag")
    b.css("#user_id").send_keys("17850")
    b.css("#play-submit").click()
    b.wait_for("#search-results")
    hits = b.all("#search-results tr.hit")
    assert len(hits) == 10
    assert "BAG" in b.css("#search-results").text.upper()
    assert b.all("#rec-results tr.hit")
    b.check("playground")

    b.css('nav a[data-nav="models"]').click()
    b.wait_for("#model-versions")
    assert "rec_model v1" in b.css("#live-version").text
    assert b.all("table.eval")
    b.check("models")

    for _ in range(5):  # some API traffic for the live view
        resp = httpx.get(f"{server}/search", params={"q": "mug"}, headers=auth(keys["reader"]))
        assert resp.status_code == 200
    b.css('nav a[data-nav="live"]').click()
    b.wait_for("#live")
    deadline = time.monotonic() + 10
    while b.css("#m-rps").text == "—" and time.monotonic() < deadline:
        time.sleep(0.5)  # the second poll turns counts into a rate
    assert b.css("#m-rps").text not in ("—", "offline")
    assert "/search" in b.css("#routes").text
    b.check("live")

    b.css("#logout").click()
    b.wait_for("#login-form")
    b.open("/ui/models")
    assert "/ui/login" in driver.current_url
    b.check("logged-out")


def test_a_reader_sees_no_raw_quarantined_rows(server, driver, keys):
    b = Browser(driver, server)
    b.open("/ui/login?next=%2Fui%2Fassets%2Fevents")
    b.css("#key").send_keys(keys["reader"])
    b.css("#login-submit").click()
    b.wait_for("#quarantine-hidden")
    assert not b.all("#quarantine-rows")
    assert "InvoiceNo=" not in driver.page_source
    b.check("asset-events-reader")

"""The page at / in a real browser: headless Chromium, driven by Selenium, uploads a photo and shows its class."""

from __future__ import annotations

import shutil

import pytest

from edgelite.runtime import load
from tests.conftest import artifact

HOW_TO_RUN = ("needs headless Chromium and its driver: on Debian/Ubuntu run "
              "'apt-get install chromium chromium-driver' (.ci/run does it), then run the tests again")
CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))),
                None)
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None, reason=HOW_TO_RUN)


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1000,1100"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_the_page_classifies_a_dropped_photo(browser, served, artifacts, photo, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    expected = load(artifact(artifacts, "tflite", "int8")).predict(photo)
    browser.get(f"{served.url}/")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda _: status.get_attribute("data-state") == "idle")
    browser.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(browser, 60).until(lambda _: status.get_attribute("data-state") in ("done", "error"))
    assert status.get_attribute("data-state") == "done", browser.find_element(By.ID, "error").text
    assert browser.find_element(By.ID, "top-label").text == expected[0].label == "red"
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows] == [p.label for p in expected]
    assert "ms in the server" in browser.find_element(By.ID, "timing").text
    browser.save_screenshot(str(tmp_path / "page.png"))


def _classify(browser, path) -> str:
    """Send one file through the page's picker; the state it ends in (done or error)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status = browser.find_element(By.ID, "status")
    browser.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(browser, 60).until(lambda _: status.get_attribute("data-state") in ("done", "error"))
    return status.get_attribute("data-state")


def test_after_an_error_the_page_shows_only_plain_words(browser, served, photo, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served.url}/")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda _: status.get_attribute("data-state") == "idle")
    found = {name: browser.find_element(By.ID, name) for name in ("top-label", "timing", "error", "preview")}
    assert _classify(browser, photo) == "done"
    WebDriverWait(browser, 10).until(lambda _: found["preview"].is_displayed())
    assert found["top-label"].text == "red" and found["timing"].text

    text = tmp_path / "notes.txt"  # the browser sends text/plain: the server answers 415
    text.write_text("not a photo")
    assert _classify(browser, text) == "error"
    assert found["error"].text == "This kind of file cannot be classified. Pick a photo (JPEG, PNG, WebP, ...)."
    assert found["top-label"].text == "" and found["timing"].text == ""
    assert not browser.find_element(By.ID, "results").is_displayed()
    assert not browser.find_element(By.ID, "top").is_displayed()
    assert not found["preview"].is_displayed()

    assert _classify(browser, photo) == "done"
    broken = tmp_path / "broken.jpg"  # image/jpeg that neither the browser nor the server can decode: 400
    broken.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert _classify(browser, broken) == "error"
    assert found["error"].text.startswith("This file could not be read as an image")
    assert found["top-label"].text == "" and found["timing"].text == ""
    assert not found["preview"].is_displayed()  # no broken-image icon
    assert "curl" not in browser.find_element(By.TAG_NAME, "body").text


def test_the_classes_box_stops_at_the_model_classes(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served.url}/")
    status = browser.find_element(By.ID, "status")
    WebDriverWait(browser, 60).until(lambda _: status.get_attribute("data-state") == "idle")
    box = browser.find_element(By.ID, "top-k")
    assert box.get_attribute("value") == "3" and box.get_attribute("max") == "3"  # 3 colour classes, default 5
    assert "POST /models/NAME/predict" in browser.find_element(By.TAG_NAME, "body").text

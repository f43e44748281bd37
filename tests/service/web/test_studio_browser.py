"""The comparison studio in a real headless Chromium (Debian's chromium and chromium-driver, which
``make test`` installs): upload a Kodak image, see ours, JPEG, WebP and AVIF at the same size, use the
split view, the zoom and the progressive player, see an error in words, and read /docs and /redoc
with no network beyond the gateway. Screenshots go to var/browser/ for a person to look at."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from service.settings import PROJECT_ROOT
from tests.conftest import KODAK, LiveServer

SCREENSHOTS = PROJECT_ROOT / "var" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WIDTH, HEIGHT = 1280, 1600


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WIDTH},{HEIGHT}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _console_errors(driver: webdriver.Chrome) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def _foreign_requests(driver: webdriver.Chrome, origin: str) -> list[str]:
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [name for name in names if not name.startswith((origin, "blob:", "data:"))]


def _natural_width(driver: webdriver.Chrome, element) -> int:
    return driver.execute_script("return arguments[0].complete ? arguments[0].naturalWidth : 0", element)


def _compare(driver: webdriver.Chrome, gateway: LiveServer, image: Path, msssim: str | None = None) -> None:
    """Upload ``image`` and compare, at the page's default target or at MS-SSIM ``msssim``."""
    driver.get(gateway.url + "/")
    driver.find_element(By.ID, "file").send_keys(str(image))
    if msssim is not None:
        Select(driver.find_element(By.ID, "kind")).select_by_value("msssim")
        value = driver.find_element(By.ID, "value")
        value.clear()
        value.send_keys(msssim)
    driver.find_element(By.ID, "go").click()


def test_the_default_target_is_a_perceptual_score(browser: webdriver.Chrome, gateway) -> None:
    browser.get(gateway.url + "/")
    assert (
        Select(browser.find_element(By.ID, "kind")).first_selected_option.get_attribute("value")
        == "ssimulacra2"
    )
    assert browser.find_element(By.ID, "value").get_attribute("value") == "70"


def test_a_comparison_shows_the_five_codecs_with_their_figures(browser: webdriver.Chrome, gateway) -> None:
    # at MS-SSIM 0.90 the network's bitstream is the smaller: the progressive player has its iterations
    _compare(browser, gateway, KODAK / "kodim23.png", "0.90")
    wait = WebDriverWait(browser, 600)
    wait.until(
        lambda d: (
            d.find_element(By.ID, "results").is_displayed() or d.find_element(By.ID, "error").is_displayed()
        )
    )
    assert not browser.find_element(By.ID, "error").is_displayed(), browser.find_element(By.ID, "error").text
    grid = browser.find_elements(By.CSS_SELECTOR, "#grid img")
    assert [img.get_attribute("data-codec") for img in grid] == [
        "ours",
        "JPEG 4:2:0",
        "WebP",
        "AVIF",
        "JPEG XL",
    ]
    wait.until(lambda d: all(_natural_width(d, img) == 768 for img in grid))
    rows = {
        row.get_attribute("data-codec"): [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
        for row in browser.find_elements(By.CSS_SELECTOR, "#figures tbody tr")
    }
    ours_bytes = int(rows["ours"][2].replace(",", ""))
    for codec in ("ours", "JPEG 4:2:0", "WebP", "AVIF", "JPEG XL"):
        _, _, size, bpp, perceptual, score, psnr = rows[codec]
        assert 0 < int(size.replace(",", "")) <= ours_bytes
        assert float(bpp) > 0 and -100 < float(perceptual) < 100
        assert 0.5 < float(score) <= 1 and 15 < float(psnr) < 60
    browser.save_screenshot(str(SCREENSHOTS / "studio.png"))
    assert _console_errors(browser) == []

    # Split view: the slider and the arrow keys move the split; the zoom shows pixels at 1:1 and 2:1.
    right = browser.find_element(By.ID, "right-image")
    browser.execute_script(
        "const s = document.getElementById('split'); s.value = 20; s.dispatchEvent(new Event('input'))"
    )
    assert "20%" in right.value_of_css_property("clip-path")
    browser.find_element(By.ID, "stage").send_keys(Keys.ARROW_RIGHT)
    assert browser.find_element(By.ID, "split").get_attribute("value") == "25"
    assert "25%" in right.value_of_css_property("clip-path")
    browser.find_element(By.CSS_SELECTOR, "input[name=zoom][value='2']").click()
    left = browser.find_element(By.ID, "left-image")
    assert browser.execute_script("return arguments[0].getBoundingClientRect().width", left) == 2 * 768
    browser.find_element(By.CSS_SELECTOR, "input[name=zoom][value='1']").click()
    assert browser.execute_script("return arguments[0].getBoundingClientRect().width", left) == 768

    # The progressive player: each step names its bytes and shows that step's image.
    step = browser.find_element(By.ID, "step")
    last = int(step.get_attribute("max"))
    assert last >= 2
    browser.execute_script("arguments[0].value = 1; arguments[0].dispatchEvent(new Event('input'))", step)
    assert browser.find_element(By.ID, "step-text").text.startswith(f"1 of {last} iterations:")
    image = browser.find_element(By.ID, "step-image")
    assert image.get_attribute("src").endswith("iterations=1")
    WebDriverWait(browser, 60).until(lambda d: _natural_width(d, image) == 768)
    assert browser.find_element(By.ID, "download-bitstream").get_attribute("download") == "kodim23.rgic"
    assert "/compress" in browser.find_element(By.ID, "curl").text
    assert _console_errors(browser) == [] and _foreign_requests(browser, gateway.url) == []

    # At a phone's width the results still fit (wide parts scroll inside their own boxes).
    browser.set_window_size(390, 844)
    try:
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        browser.save_screenshot(str(SCREENSHOTS / "phone-results.png"))
    finally:
        browser.set_window_size(WIDTH, HEIGHT)


def test_the_player_names_the_layers_two_steps(browser: webdriver.Chrome, gateway, tmp_path) -> None:
    """At MS-SSIM 0.99 the refinement layer codes the image alone: its block means, then all of it."""
    from PIL import Image

    crop = tmp_path / "crop.png"
    Image.open(KODAK / "kodim23.png").crop((300, 100, 556, 292)).save(crop)
    _compare(browser, gateway, crop, "0.99")
    WebDriverWait(browser, 600).until(lambda d: d.find_element(By.ID, "results").is_displayed())
    step = browser.find_element(By.ID, "step")
    assert step.get_attribute("max") == "2"
    texts = []
    for k in (1, 2):
        script = f"arguments[0].value = {k}; arguments[0].dispatchEvent(new Event('input'))"
        browser.execute_script(script, step)
        texts.append(browser.find_element(By.ID, "step-text").text)
    assert texts[0].startswith("the refinement layer's block means:")
    assert texts[1].startswith("the refinement layer:") and texts[1].endswith("(100 % of the file)")
    assert _console_errors(browser) == []


def test_an_unsupported_file_shows_an_error_in_words(browser: webdriver.Chrome, gateway, tmp_path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    _compare(browser, gateway, text)
    error = browser.find_element(By.ID, "error")
    WebDriverWait(browser, 60).until(lambda d: error.is_displayed())
    assert error.text.startswith("This file is not an image the service can read")
    assert "{" not in error.text  # words, not JSON
    assert not browser.find_element(By.ID, "progress-box").is_displayed()
    browser.save_screenshot(str(SCREENSHOTS / "error.png"))
    assert _console_errors(browser) == []


def test_the_page_fits_a_phone(browser: webdriver.Chrome, gateway) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(gateway.url + "/")
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        browser.save_screenshot(str(SCREENSHOTS / "phone.png"))
    finally:
        browser.set_window_size(WIDTH, HEIGHT)


@pytest.mark.parametrize(("page", "rendered"), [("/docs", ".opblock"), ("/redoc", "[data-section-id]")])
def test_api_docs_render_from_the_gateway_alone(
    browser: webdriver.Chrome, gateway, page: str, rendered: str
) -> None:
    browser.get(gateway.url + page)
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, rendered)) > 0)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "/compress" in text and "/compare" in text
    assert _foreign_requests(browser, gateway.url) == []
    assert _console_errors(browser) == []
    browser.save_screenshot(str(SCREENSHOTS / f"{page.strip('/')}.png"))

"""The live page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, which
``make browser`` and ``.ci/run`` install), driven by selenium: a user's list is seen to change
after a record is produced."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator

import pytest

from stream_cf.serve import BackgroundServer
from tests.serve.helpers import list_value, publish

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

Serve = Callable[..., BackgroundServer]


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "Chromium cannot be used here: Debian's chromium and chromium-driver packages are "
            "not installed (`make browser` installs them with apt-get)"
        )
    from selenium import webdriver  # noqa: PLC0415
    from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_shows_a_list_changing(
    kafka_bootstrap: str, output_topic: str, serve: Serve, browser: object
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException  # noqa: PLC0415
    from selenium.webdriver.common.by import By  # noqa: PLC0415
    from selenium.webdriver.remote.webdriver import WebDriver  # noqa: PLC0415
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    assert isinstance(browser, WebDriver)
    publish(
        kafka_bootstrap,
        output_topic,
        [
            ("42", list_value("42", [("alien", 1.0), ("heat", 0.5)], ratings=[4.5, 3.25])),
            ("7/x", list_value("7/x", [("up", 1.0)])),
        ],
    )
    server = serve(output_topic)
    assert server.wait_ready(30)
    wait = WebDriverWait(
        browser, 20, poll_frequency=0.05, ignored_exceptions=(StaleElementReferenceException,)
    )

    def texts(selector: str) -> list[str]:
        """The text of every element matching ``selector``, read at once (the page re-renders
        its lists: elements found one by one may be gone when read)."""
        script = "return [...document.querySelectorAll(arguments[0])].map(e => e.textContent)"
        return list(browser.execute_script(script, selector))

    def items() -> list[str]:
        return texts("#items tr td:nth-child(2)")

    browser.get(server.url + "/")
    # the picker lists the users; choosing one opens its stream
    wait.until(lambda _: "7/x" in texts("#users li"))
    browser.find_element(By.ID, "search").send_keys("4")
    wait.until(lambda _: texts("#users li") == ["42"])
    browser.execute_script("document.querySelector('#users li[data-user=\"42\"]').click()")
    wait.until(lambda _: items() == ["alien", "heat"])
    assert "4.50★" in browser.find_element(By.ID, "items").text
    assert browser.find_element(By.ID, "updates").text == "1"
    # a new list on the topic: the page shows it without a reload
    publish(
        kafka_bootstrap, output_topic, [("42", list_value("42", [("coco", 2.0), ("alien", 1.0)]))]
    )
    wait.until(lambda _: items() == ["coco", "alien"])
    assert browser.find_element(By.ID, "updates").text == "2"
    assert "?user=42" in browser.current_url
    # the side panel shows the stream's figures
    wait.until(lambda _: "lists held" in browser.find_element(By.ID, "stats").text)
    assert browser.find_element(By.ID, "health").text == "ready"
    # an erasure empties the list
    publish(kafka_bootstrap, output_topic, [("42", None)])
    wait.until(lambda _: "erased" in browser.find_element(By.ID, "state").text)
    assert items() == []

"""Debian's Chromium (/usr/bin/chromium) driven headless by Debian's chromedriver through selenium.

Flags as the machine notes give them (no sandbox as root, no GPU, nothing fetched in the
background, a fresh profile); TZ set for the browser process so that the console's times are
rewritten into a zone that is not UTC; downloads allowed into a directory of the run's own.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("CONSOLE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CONSOLE_CHROMEDRIVER", "/usr/bin/chromedriver")
# A zone with a 45-minute offset and no daylight saving: a time rewritten into it cannot be
# mistaken for the UTC text, nor for a whole-hour zone.
BROWSER_TZ = "Asia/Kathmandu"
WIDTH = 1280


def missing() -> str | None:
    """What is missing to run a browser, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return f"{path} not found (Debian: apt-get install chromium chromium-driver)"
    return None


class Browser:
    def __init__(self, base: str, work: str) -> None:
        self.base = base
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=work)
        self.downloads = tempfile.mkdtemp(prefix="downloads-", dir=work)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--window-size={WIDTH},900",
            f"--user-data-dir={self.profile}",
            "--lang=en-GB",
        ):
            opts.add_argument(flag)
        opts.add_experimental_option(
            "prefs",
            {
                "download.default_directory": self.downloads,
                "download.prompt_for_download": False,
                "profile.default_content_setting_values.automatic_downloads": 1,
            },
        )
        env = dict(os.environ, TZ=BROWSER_TZ)
        # The driver is Debian's: never let selenium look for (or fetch) one of its own.
        env["SE_OFFLINE"] = "true"
        os.environ["SE_OFFLINE"] = "true"
        service = DriverService(executable_path=CHROMEDRIVER, env=env, log_output=os.path.join(work, "chromedriver.log"))
        self.driver = webdriver.Chrome(service=service, options=opts)
        self.driver.set_page_load_timeout(30)
        self.driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": self.downloads}
        )

    def quit(self) -> None:
        try:
            self.driver.quit()
        except WebDriverException:
            pass
        shutil.rmtree(self.profile, ignore_errors=True)

    # ---- navigation and reading ----------------------------------------------------------------
    def get(self, path: str) -> None:
        self.driver.get(self.base + path)

    @property
    def path(self) -> str:
        url = self.driver.current_url
        return url.removeprefix(self.base)

    def h1(self) -> str:
        els = self.driver.find_elements(By.TAG_NAME, "h1")
        return els[0].text.strip() if els else ""

    def css(self, selector: str) -> Any:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait(self, what: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
        # A page that navigates while it is read raises (stale element, "node does not belong to
        # the document"): read again at the next poll.
        return WebDriverWait(
            self.driver, timeout, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)
        ).until(lambda _d: what(), message)

    def wait_path(self, prefix: str, timeout: float = 10.0) -> None:
        self.wait(lambda: self.path.startswith(prefix), timeout, f"expected a page at {prefix}, still at {self.path}")

    def wait_loaded(self) -> None:
        self.wait(lambda: self.driver.execute_script("return document.readyState") == "complete")

    def submit_form_of(self, element: Any) -> None:
        """Clicks the submit button of the form that holds `element` and waits for the next page."""
        submit(element.find_element(By.XPATH, "./ancestor-or-self::form"))

    def cookie(self, name_suffix: str = "cm_session") -> dict[str, Any] | None:
        for c in self.driver.get_cookies():
            if c["name"].endswith(name_suffix):
                return c
        return None

    def screenshot(self, path: str) -> None:
        """The whole page, 1280 CSS pixels wide at scale 1 (at most 4000 high)."""
        height = self.driver.execute_script(
            "return Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0)"
        )
        height = max(720, min(int(height or 720), 4000))
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        try:
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {"format": "png", "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}},
            )
        finally:
            self.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


def submit(form: Any, timeout: float = 15.0) -> None:
    """Clicks the form's submit button and waits until the page it was on is gone (the answer to
    the POST has replaced it) and the new one has loaded."""
    buttons = form.find_elements(By.CSS_SELECTOR, "button[type=submit], button:not([type]), input[type=submit]")
    if not buttons:
        raise AssertionError("form without a submit button")
    buttons[0].click()
    wait = WebDriverWait(form.parent, timeout, poll_frequency=0.05)
    wait.until(lambda _d: gone(form), "the form's page did not go away after submitting it")
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")


def gone(element: Any) -> bool:
    """Whether `element`'s document has been replaced. chromedriver says so either as a stale
    element or, mid-navigation, as "Node with given id does not belong to the document"."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in str(e) or "no such element" in str(e).lower():
            return True
        raise
    return False

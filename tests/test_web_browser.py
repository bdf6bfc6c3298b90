"""End to end in a real headless browser (Debian's chromium driven by Playwright): the page loads,
Play brings notes onto the piano roll and PCM into the AudioWorklet, and a slider reaches the engine."""

from __future__ import annotations

import shutil
import time

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
pytest.importorskip("fastapi")

from test_web import Live  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian: apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        except Exception as e:          # a chromium that cannot start here
            pytest.skip(f"chromium did not start: {str(e).splitlines()[0]}")
        yield b
        b.close()


def test_the_page_plays_shows_notes_streams_audio_and_its_sliders_reach_the_engine(browser):
    live = Live()
    try:
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"http://127.0.0.1:{live.port}/")
        page.wait_for_selector("#play:not([disabled])", timeout=10_000)
        assert page.locator("#artist option").count() == 3           # (any) + the two pianists
        page.click("#play")
        page.wait_for_function("window.tatum.notes >= 4 && window.tatum.frames >= 24000 && window.tatum.played > 0",
                               timeout=15_000)
        worklet = page.evaluate("window.tatum.worklet")
        assert worklet["started"] and worklet["received"] > 0          # the AudioWorklet is playing the PCM
        # the piano roll has notes drawn on it (note colours, not just the background and the key stripes)
        time.sleep(0.3)
        lit = page.evaluate("""() => {
            const c = document.getElementById('roll'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 100 || d[i + 2] > 150) n++; return n; }""")
        assert lit > 200
        # move the style mix to classical: the engine hears it and the notes change
        page.locator("#genre-classical").fill("1")
        page.locator("#genre-jazz").fill("0")
        page.wait_for_function("window.tatum.controls && window.tatum.controls.genre.classical === 1 "
                               "&& !('jazz' in window.tatum.controls.genre)", timeout=10_000)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and live.streams[0].calls[-1]["conditioning"].genre != {"classical": 1.0}:
            time.sleep(0.05)
        assert live.streams[0].calls[-1]["conditioning"].genre == {"classical": 1.0}
        page.wait_for_function("window.tatum.status && window.tatum.status.style === 'classical'", timeout=10_000)
        page.locator("#temperature").fill("0.5")
        page.wait_for_function("window.tatum.controls.temperature === 0.5", timeout=10_000)
        assert page.evaluate("window.tatum.errors.length") == 0 and not problems
        page.click("#stop")
        page.wait_for_selector("#play:not([disabled])", timeout=10_000)
    finally:
        live.close()

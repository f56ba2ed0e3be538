"""End to end in a browser: headless Chromium (Playwright, Debian's chromium) logs into the real Label
Studio, opens an MV task the engine submitted, answers it with a hotkey, submits, and the engine's
`collect()` returns that decision with the seconds the UI measured."""

from __future__ import annotations

import shutil
import uuid

import pytest

from engine.humans import ls_configs as cfg
from engine.humans.base import HumanTask
from engine.humans.label_studio import LabelStudioBackend
from engine.world.samples import generate_samples

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def test_mv_task_answered_in_the_ui_comes_back(label_studio, browser):
    sample = next(iter(generate_samples(1, seed=4, negatives_per_image=1)))
    pair = next(p for p in sample.pairs if p.label == "positive")
    backend = LabelStudioBackend(campaign=f"ui-{uuid.uuid4().hex[:8]}", url=label_studio.url, api_key=label_studio.pat)
    backend.submit([HumanTask(task_id="mv-ui", kind="mv", media_id=sample.key, phrase=pair.phrase,
                              masks=[pair.instances[0]])])
    entry = backend._entries["mv-ui"]

    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(90_000)
    page.goto(f"{label_studio.url}/user/login/")
    page.fill("input[name=email]", label_studio.username)
    page.fill("input[name=password]", label_studio.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u)

    page.goto(f"{label_studio.url}/projects/{entry.project}/data?task={entry.ls_id}")
    page.get_by_text(f'Is the highlighted mask one instance of "{pair.phrase}"?').wait_for()
    page.get_by_text(cfg.DISPLAY["accept_as_text"]).first.wait_for()  # the choices are there
    assert backend.collect() == []
    page.keyboard.press(str(cfg.KIND_LABELS["mv"].index("reject") + 1))  # hotkey 5: reject
    page.wait_for_timeout(300)
    page.get_by_role("button", name="Submit").click()

    results = []
    for _ in range(60):  # the UI posts the annotation asynchronously
        results = backend.collect()
        if results:
            break
        page.wait_for_timeout(500)
    (r,) = results
    assert (r.task_id, r.kind, r.label) == ("mv-ui", "mv", "reject")
    assert r.seconds > 0 and r.rater == "label-studio:1"
    assert backend.pending() == [] and backend.collect() == []
    page.close()

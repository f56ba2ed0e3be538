"""End to end in a browser: headless Chromium (Playwright, Debian's chromium) logs into the real Label
Studio, opens tasks the engine submitted and answers them as an annotator would: an MV task with a
hotkey (the engine's `collect()` returns that decision with the seconds the UI measured), and a
correction task whose preloaded proposals come back pixel-exact plus a brush stroke painted with the
mouse (decoded from the browser's own anti-aliased brush RLE)."""

from __future__ import annotations

import shutil
import uuid

import numpy as np
import pytest

from engine.humans import ls_configs as cfg
from engine.humans.base import HumanTask
from engine.humans.label_studio import LabelStudioBackend
from engine.world.samples import generate_samples
from storage.masks import instance_to_mask

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


def open_task(browser, label_studio, entry):
    """A logged-in page showing the Label Studio task behind a backend entry."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(90_000)
    page.goto(f"{label_studio.url}/user/login/")
    page.fill("input[name=email]", label_studio.username)
    page.fill("input[name=password]", label_studio.password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda u: "/user/login" not in u)
    page.goto(f"{label_studio.url}/projects/{entry.project}/data?task={entry.ls_id}")
    return page


def test_mv_task_answered_in_the_ui_comes_back(label_studio, browser):
    sample = next(iter(generate_samples(1, seed=4, negatives_per_image=1)))
    pair = next(p for p in sample.pairs if p.label == "positive")
    backend = LabelStudioBackend(campaign=f"ui-{uuid.uuid4().hex[:8]}", url=label_studio.url, api_key=label_studio.pat)
    backend.submit([HumanTask(task_id="mv-ui", kind="mv", media_id=sample.key, phrase=pair.phrase,
                              masks=[pair.instances[0]])])
    entry = backend._entries["mv-ui"]

    page = open_task(browser, label_studio, entry)
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


def test_correction_in_the_ui_keeps_proposals_and_adds_a_stroke(label_studio, browser):
    """Proposals preloaded as brush predictions go through the browser's brush codec and back exactly;
    a stroke the annotator paints becomes one more instance."""
    sample = next(iter(generate_samples(1, seed=6, negatives_per_image=1)))
    pair = next(p for p in sample.pairs if p.label == "positive")
    backend = LabelStudioBackend(campaign=f"ui-{uuid.uuid4().hex[:8]}", url=label_studio.url, api_key=label_studio.pat)
    backend.submit([HumanTask(task_id="cor-ui", kind="correction", media_id=sample.key, phrase=pair.phrase,
                              masks=pair.instances)])
    entry = backend._entries["cor-ui"]

    page = open_task(browser, label_studio, entry)
    page.get_by_text(f'Mask every instance of "{pair.phrase}"', exact=False).wait_for()
    page.wait_for_timeout(2000)  # the preloaded brush regions are decoded and drawn
    page.get_by_text(cfg.OBJECT, exact=True).first.click()  # the brush label (brush tool)
    stage = page.locator("canvas")
    box = stage.nth(stage.count() - 1).bounding_box()  # the image stage (224 px image, scaled)
    sx, sy = box["width"] / 224, box["height"] / 224
    page.mouse.move(box["x"] + 150 * sx, box["y"] + 100 * sy)
    page.mouse.down()
    for k in range(1, 11):  # a horizontal stroke from (150, 100) to (190, 100), image pixels
        page.mouse.move(box["x"] + (150 + 4 * k) * sx, box["y"] + 100 * sy)
    page.mouse.up()
    page.wait_for_timeout(300)
    page.get_by_role("button", name="Submit").click()
    results = []
    for _ in range(60):
        results = backend.collect()
        if results:
            break
        page.wait_for_timeout(500)
    (r,) = results
    assert r.label == "positive" and r.seconds > 0
    assert len(r.instances) == len(pair.instances) + 1
    got = [instance_to_mask(i) for i in r.instances]
    for want in pair.instances:  # COCO -> brush -> the browser's brush codec -> brush -> COCO: exact
        assert any(np.array_equal(g, instance_to_mask(want)) for g in got)
    (stroke,) = [g for g in got if not any(np.array_equal(g, instance_to_mask(w)) for w in pair.instances)]
    ys, xs = np.nonzero(stroke)
    assert stroke[100, 170] and 140 <= xs.min() <= 152 and 180 <= xs.max() <= 200 and 90 <= ys.min() <= 100
    assert ys.max() <= 110 and stroke.sum() > 40
    page.close()

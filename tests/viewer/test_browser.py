"""Open the generated page in headless Chromium and use it as a person would.

Needs Debian's ``chromium`` (``apt-get install chromium``) and the ``playwright`` Python package;
playwright drives the system browser and never downloads one. Skipped when either is missing.
Set ``AGEMEM_VIEWER_SCREENSHOT=/path/to/file.png`` to keep a screenshot of the side-by-side view.
"""

import os
import shutil

import pytest

from agemem_gym.viewer import render_html

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = os.environ.get("AGEMEM_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1500, "height": 1300},
        )
        yield context
        context.close()


@pytest.fixture
def open_page(browser, tmp_path):
    """Write the page for some episodes, open it, and collect errors and requests."""
    opened = []

    def _open(episodes, name="page.html"):
        path = tmp_path / name
        path.write_text(render_html(episodes), encoding="utf-8")
        page = browser.new_page()
        page.problems, page.requests = [], []
        page.on("pageerror", lambda exc: page.problems.append(str(exc)))
        page.on("console", lambda msg: msg.type == "error" and page.problems.append(msg.text))
        page.on("request", lambda req: page.requests.append(req.url))
        page.goto(path.as_uri())
        page.wait_for_selector("#step-label")
        opened.append(page)
        return page

    yield _open
    for page in opened:
        page.close()


def _pane(page, index=0):
    return page.locator(f'.pane[data-pane="{index}"]')


def _ltm_ids(pane):
    return pane.locator(".ltm-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.memoryId)")


def test_step_through_one_episode(open_page, episodes):
    episode = episodes["oracle"]
    n = len(episode.steps)
    page = open_page([episode])
    pane = _pane(page)
    assert page.text_content("#step-label") == f"Step 0 / {n}"
    assert pane.locator(".step-card h3").text_content() == "Episode start"
    assert pane.locator(".ltm-card .empty").text_content() == "(empty)"

    page.keyboard.press("ArrowRight")
    assert page.text_content("#step-label") == f"Step 1 / {n}"
    assert _ltm_ids(pane) == [m.id for m in episode.ltm(1)]
    assert pane.locator(".ltm-table tbody tr.added").count() == len(episode.ltm(1))
    assert pane.locator(".ltm-table tbody tr.gold mark.gold").count() >= len(episode.ltm(1))
    assert pane.locator(".call[data-tool='Add_memory']").count() == len(episode.steps[0].calls)
    assert pane.locator(".fact.stored").count() == len(episode.ltm(1))
    assert "stored at step 1" in pane.locator(".fact.stored .status").first.text_content()

    chart = pane.locator("svg.context-chart")
    assert chart.locator(".budget-line").count() == 1
    points = chart.locator(".series-full").get_attribute("points").split()
    assert len(points) == n + 1
    assert chart.locator(".cursor").get_attribute("x1") == points[1].split(",")[0]
    assert f"budget {episode.budget}" in pane.locator(".chart-label").text_content()

    retrieve = next(s.t for s in episode.steps if s.calls and s.calls[0].name == "Retrieve_memory")
    pane.locator(f'.turn[data-t="{retrieve}"]').click()
    assert page.text_content("#step-label") == f"Step {retrieve} / {n}"
    assert pane.locator(".turn.current").get_attribute("data-t") == str(retrieve)
    assert pane.locator(".call[data-tool='Retrieve_memory'] .result mark.gold").count() == len(episode.task["facts"])
    assert pane.locator(".fact.retrieved").count() == len(episode.task["facts"])
    assert "Stage 3" in pane.locator(".step-card .badges").text_content()

    page.keyboard.press("End")
    assert page.text_content("#step-label") == f"Step {n} / {n}"
    assert pane.locator(".step-card .answer pre").text_content() == episode.final["answer"]
    assert "episode over" in pane.locator(".step-card").text_content()
    page.keyboard.press("ArrowLeft")
    assert page.text_content("#step-label") == f"Step {n - 1} / {n}"
    page.click("#btn-first")
    assert page.text_content("#step-label") == f"Step 0 / {n}"

    assert page.problems == []
    assert page.requests == [page.url.split("#")[0]]  # the page itself and nothing else


def test_side_by_side_two_rollouts_of_one_task(open_page, episodes, tmp_path):
    left, right = episodes["oracle"], episodes["store-all"]
    page = open_page([left, right])
    assert page.is_checked("#side-by-side") and page.locator(".pane").count() == 2
    assert "oracle" in _pane(page, 0).locator(".head").text_content()
    assert "store-all" in _pane(page, 1).locator(".head").text_content()

    # aligned by stage (the default): the first Stage-3 step of one next to the first of the other
    t_left = next(s.t for s in left.steps if s.stage == 3)
    t_right = next(s.t for s in right.steps if s.stage == 3)
    _pane(page, 0).locator(f'.turn[data-t="{t_left}"]').click()
    assert _pane(page, 1).locator(".step-card").get_attribute("data-t") == str(t_right)
    assert "Stage 3" in _pane(page, 1).locator(".step-card .badges").text_content()
    assert _ltm_ids(_pane(page, 1)) == [m.id for m in right.ltm(t_right)]
    assert _ltm_ids(_pane(page, 0)) == [m.id for m in left.ltm(t_left)]

    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=os.environ.get("AGEMEM_VIEWER_SCREENSHOT") or str(tmp_path / "side_by_side.png"))

    page.select_option("#align", "step")
    assert _pane(page, 1).locator(".step-card").get_attribute("data-t") == str(t_left)
    page.keyboard.press("End")
    last = max(len(left.steps), len(right.steps))
    assert page.text_content("#step-label") == f"Step {last} / {last}"
    assert "ended at step" in _pane(page, 0 if len(left.steps) < last else 1).locator(".step-card").text_content()

    page.uncheck("#side-by-side")
    assert page.locator(".pane").count() == 1
    assert page.problems == []


def test_hostile_text_is_shown_not_run(open_page, episodes):
    from tests.viewer.conftest import EVIL

    page = open_page([episodes["evil"]])
    page.keyboard.press("ArrowRight")
    pane = _pane(page)
    assert pane.locator(".ltm-table td.content").text_content() == EVIL
    assert pane.locator(".step-card .think pre").text_content() == EVIL
    assert page.locator("#app img").count() == 0 and page.locator("#app script").count() == 0
    page.keyboard.press("End")
    assert pane.locator(".step-card .answer pre").text_content() == EVIL
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.problems == []

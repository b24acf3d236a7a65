"""The feature explorer in a real browser (system Chromium driven by playwright): click, partners, cards,
keyboard, URL hash, filters, search, no console errors, hostile tokens rendered as text.

Skipped when playwright or /usr/bin/chromium is missing. With FEATGEOM_EXPLORER_SCREENSHOT set (a path, or 1
for docs/explorer_screenshot.png) the page with a selection is also saved as a screenshot.
"""

import os
from pathlib import Path

import numpy as np
import pytest

from featgeom_tda.viz.explorer import write_explorer
from viz.explorer_inputs import CONCEPTS, HOSTILE, synthetic_explorer_inputs, with_crosscoder_labels

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
# CI sets FEATGEOM_REQUIRE_BROWSER=1: there a missing browser fails the run instead of skipping these tests
if os.environ.get("FEATGEOM_REQUIRE_BROWSER") == "1" and not os.path.exists(CHROMIUM):
    raise RuntimeError(f"FEATGEOM_REQUIRE_BROWSER=1 but there is no system Chromium at {CHROMIUM}; run `make browser`")
if os.environ.get("FEATGEOM_REQUIRE_BROWSER") == "1":
    import playwright.sync_api  # noqa: F401 - an ImportError here fails the run, as it should
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
pytestmark = [pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no system Chromium at {CHROMIUM}"),
              pytest.mark.timeout(180)]
READY = "window.__explorer && (window.__explorer.ready || window.__explorer.error)"


@pytest.fixture(scope="module")
def inputs():
    return with_crosscoder_labels(synthetic_explorer_inputs(300, 250, seed=3), seed=4, multi_node=(2, 3))


@pytest.fixture(scope="module")
def url(inputs, tmp_path_factory):
    return write_explorer(tmp_path_factory.mktemp("explorer") / "explorer.html", **inputs).resolve().as_uri()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems, dialogs = [], []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("request", lambda r: problems.append(f"request: {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    page.goto(url)
    page.wait_for_function(READY, timeout=30_000)
    assert page.evaluate("window.__explorer.error") is None
    yield page
    assert problems == [] and dialogs == []
    page.close()


def _partners(inputs, a_id):
    return sorted([(b, r) for a, b, r in inputs["pairs"] if a == a_id], key=lambda p: -p[1])


def _target(page, inputs):
    """An alive feature of A with a partner and no other point within 4 px of it on screen."""
    pos = page.evaluate("Array.from({length: %d}, (_, i) => window.__explorer.pointPosition('a', i))" % len(inputs["features_a"]))
    xy = np.array([[p["x"], p["y"]] for p in pos])
    for a_id in sorted({a for a, _, _ in inputs["pairs"]}):
        d = np.sqrt(((xy - xy[a_id]) ** 2).sum(axis=1))
        d[a_id] = np.inf
        if a_id != 1 and d.min() > 4:
            return a_id, pos[a_id]
    raise AssertionError("no isolated paired feature in the synthetic layout")


def _node_text(feature):
    node = feature.mapper_node
    return f"Mapper node: {node}" if isinstance(node, str) else "Mapper nodes: " + ", ".join(node)


def _peak_token(feature):
    ex = feature.examples[0]
    return ex.tokens[int(np.argmax(np.abs(ex.values)))].replace("\n", "\u21b5")


def test_click_selects_highlights_partners_and_shows_both_cards(page, inputs):
    a_id, pos = _target(page, inputs)
    partners = _partners(inputs, a_id)
    page.mouse.click(pos["x"], pos["y"])
    state = page.evaluate("window.__explorer.state()")
    assert state["selected"] == {"side": "a", "id": a_id}
    assert [h["id"] for h in state["highlighted"]] == [b for b, _ in partners]
    assert all(page.evaluate(f"window.__explorer.isHighlighted('b', {b})") for b, _ in partners)
    assert not page.evaluate(f"window.__explorer.isHighlighted('a', {a_id})")
    best = partners[0][0]
    assert state["shown"] == {"side": "b", "id": best}
    assert page.evaluate("location.hash") == f"#a={a_id}"
    fa, fb = inputs["features_a"][a_id], inputs["features_b"][best]
    card_a = page.locator("#card-a")
    assert card_a.locator("h3").text_content() == f"model A <b> \u00b7 feature {a_id}"
    assert card_a.locator(".promoted .tok").first.text_content() == fa.promoted[0][0]
    assert card_a.locator(".ex .peak").first.text_content() == _peak_token(fa)
    assert card_a.locator(".badge.concept").text_content() == f"concept: {fa.concept}"
    assert card_a.locator(".badge.node").text_content() == _node_text(fa)
    assert card_a.locator("button.partner").first.text_content() == f"{best} (r = {partners[0][1]:.3f})"
    assert card_a.locator("svg.hist rect").count() == len(fa.histogram)
    assert card_a.locator(".ex").count() == len(fa.examples)
    # per-token highlighting: the peak has the most opaque background, its value in the title
    peak = card_a.locator(".ex .peak").first
    assert float(peak.get_attribute("title")) == pytest.approx(max(fa.examples[0].values), rel=2e-3)
    assert peak.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(230, 85, 13)"
    card_b = page.locator("#card-b")
    assert card_b.get_attribute("data-id") == str(best)
    assert card_b.locator(".promoted .tok").first.text_content() == fb.promoted[0][0]


def test_keyboard_moves_the_selection_and_the_hash_restores_it(page, inputs, url):
    page.locator("h1").click()  # focus on the page, not an input
    page.evaluate("window.__explorer.select('a', 10)")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("location.hash") == "#a=11"
    page.keyboard.press("ArrowDown")
    assert page.evaluate("location.hash") == "#a=12"
    page.keyboard.press("ArrowLeft")
    assert page.evaluate("location.hash") == "#a=11"
    assert page.locator("#card-a h3").text_content().endswith("feature 11")
    page.keyboard.press("Escape")
    assert page.evaluate("location.hash") == "" and page.evaluate("window.__explorer.state().selected") is None
    page.evaluate("location.hash = '#b=7'")
    page.wait_for_function("window.__explorer.state().selected && window.__explorer.state().selected.id === 7")
    assert page.evaluate("window.__explorer.state().selected") == {"side": "b", "id": 7}
    # a fresh load restores the selection from the hash
    page.goto(url + "#b=42")
    page.wait_for_function(READY)
    assert page.evaluate("window.__explorer.state().selected") == {"side": "b", "id": 42}
    assert page.locator("#card-b h3").text_content() == "model B \u00b7 feature 42"


def test_filters_and_search(page, inputs):
    n_a = len(inputs["features_a"])
    best = {}
    for a, _, r in inputs["pairs"]:
        best[a] = max(best.get(a, -1.0), r)
    page.evaluate("(() => { const s = document.getElementById('minr'); s.value = '0.9'; s.dispatchEvent(new Event('input')); })()")
    assert page.evaluate("window.__explorer.state().visible.a") == sum(r >= 0.9 for r in best.values())
    page.evaluate("(() => { const s = document.getElementById('minr'); s.value = '0'; s.dispatchEvent(new Event('input')); })()")
    assert page.evaluate("window.__explorer.state().visible.a") == n_a
    concept = CONCEPTS.index("months")
    page.select_option("#concept", str(concept))
    assert page.evaluate("window.__explorer.state().visible.a") == sum(f.concept == "months" for f in inputs["features_a"])
    page.select_option("#concept", "-2")
    page.select_option("#alive", "dead")
    assert page.evaluate("window.__explorer.state().visible.a") == sum(f.dead for f in inputs["features_a"])
    page.select_option("#alive", "alive")
    assert page.evaluate("window.__explorer.state().visible.a") == sum(not f.dead for f in inputs["features_a"])
    page.select_option("#alive", "all")
    page.fill("#search", "a:12")
    assert page.evaluate("window.__explorer.state().matches") == {"a": [12], "b": []}
    page.fill("#search", "45")
    assert page.evaluate("window.__explorer.state().matches") == {"a": [45], "b": [45]}
    page.fill("#search", "FEBRUARY")
    m = page.evaluate("window.__explorer.state().matches")
    want = [i for i, f in enumerate(inputs["features_a"]) if any(t.strip() == "February" for t, _ in f.promoted)]
    assert want and set(want) <= set(m["a"])
    page.press("#search", "Enter")
    assert page.evaluate("window.__explorer.state().selected") == {"side": "a", "id": m["a"][0]}


def test_crosscoder_filter_and_card(page, inputs):
    """The filter keeps the features whose best-correlated crosscoder latent has the chosen class; the card says
    which latent, and a feature in two Mapper nodes lists both."""
    from featgeom_tda.viz.explorer import CROSSCODER_CLASSES

    assert page.locator("#xc-box").is_visible()
    assert "correlates best" in page.locator("#xc-box").get_attribute("title")
    n_a = len(inputs["features_a"])
    for name in ("shared", "exclusive_a", "none"):
        page.select_option("#xc", str(CROSSCODER_CLASSES.index(name)))
        state = page.evaluate("window.__explorer.state()")
        assert state["visible"]["a"] == sum(f.crosscoder_class == name for f in inputs["features_a"])
        assert state["visible"]["b"] == sum(f.crosscoder_class == name for f in inputs["features_b"])
        assert state["filters"]["crosscoder"] == CROSSCODER_CLASSES.index(name)
    page.select_option("#xc", "-2")
    assert page.evaluate("window.__explorer.state().visible.a") == n_a
    f = next(i for i, x in enumerate(inputs["features_a"]) if x.crosscoder_class == "exclusive_b")
    page.evaluate(f"window.__explorer.select('a', {f})")
    x = inputs["features_a"][f]
    assert page.locator("#card-a .badge.xc").text_content() == (
        f"crosscoder: only B (latent {x.crosscoder_latent}, r = {x.crosscoder_correlation:.3f})")
    page.evaluate("window.__explorer.select('a', 3)")
    assert page.locator("#card-a .badge.node").text_content() == _node_text(inputs["features_a"][3])
    assert _node_text(inputs["features_a"][3]).startswith("Mapper nodes: ")


def test_hostile_token_renders_as_text(page, inputs):
    pos = page.evaluate("window.__explorer.pointPosition('a', 1)")
    page.mouse.move(pos["x"], pos["y"])  # the hover card
    assert page.evaluate("window.__explorer.state().hovered") is not None
    page.evaluate("window.__explorer.select('a', 1)")
    card = page.locator("#card-a")
    assert card.locator(".promoted .tok").first.text_content() == HOSTILE
    assert card.locator(".ex .peak").first.text_content() == HOSTILE
    assert page.locator("#hover .promoted .tok").first.text_content() == HOSTILE or page.locator("#hover").is_hidden()
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0


def test_screenshot_when_asked(page, inputs):
    target = os.environ.get("FEATGEOM_EXPLORER_SCREENSHOT")
    if not target:
        pytest.skip("set FEATGEOM_EXPLORER_SCREENSHOT (a path, or 1 for docs/explorer_screenshot.png) to save a screenshot")
    out = Path(__file__).resolve().parents[2] / "docs" / "explorer_screenshot.png" if target == "1" else Path(target)
    a_id, pos = _target(page, inputs)
    page.mouse.click(pos["x"], pos["y"])
    page.mouse.move(5, 5)  # off the panels: no hover card over the two cards
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000

"""The explorer page and the documentation site, driven in a real browser (headless Chromium).

The browser is the system's Chromium with its matching driver (Debian: ``apt-get install
chromium chromium-driver``), given to Selenium by path, so nothing is downloaded at test time.
``VAE_NUMPY_CHROMIUM`` and ``VAE_NUMPY_CHROMEDRIVER`` point elsewhere; without a browser, a
driver or selenium the tests skip and say which is missing.

The explorer is opened from a ``file://`` URL, as a user opens the file it writes; the
documentation site (the ``docs_site`` build) is served from 127.0.0.1, as a reader sees it once
published. Screenshots are kept as test artefacts in ``$VAE_NUMPY_TEST_ARTEFACTS`` (default: a
folder of pytest's temporary directory).
"""

from __future__ import annotations

import inspect
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from vae_numpy.autoencoder import Autoencoder
from vae_numpy.cvae import ConditionalVAE
from vae_numpy.data import load_dataset
from vae_numpy.gmvae import GaussianMixtureVAE
from vae_numpy.plots.explorer import latent_plane, write_explorer
from vae_numpy.ssvae import SemiSupervisedVAE
from vae_numpy.vae import VAE

#: The decoded values must agree with model.decode within this (float32 rounding is ~1e-7).
VALUE_TOLERANCE = 1e-5

#: Chromium's switches for a quiet, offline, throw-away session.
CHROMIUM_ARGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1000,760",
)


def _find(env: str, *names: str) -> str | None:
    if os.environ.get(env):
        return os.environ[env] if Path(os.environ[env]).is_file() else None
    return next((found for name in names if (found := shutil.which(name))), None)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium driven by Selenium; skips, saying why, when one is missing."""
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[dev]')"
    )
    from selenium.webdriver.chrome.service import Service

    chromium = _find("VAE_NUMPY_CHROMIUM", "chromium", "chromium-browser")
    driver_path = _find("VAE_NUMPY_CHROMEDRIVER", "chromedriver")
    if chromium is None or driver_path is None:
        missing = " and ".join(
            what
            for what, path in (("chromium", chromium), ("chromedriver", driver_path))
            if path is None
        )
        pytest.skip(f"no {missing} on PATH (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="vae-numpy-chromium-")
    for arg in (*CHROMIUM_ARGS, f"--user-data-dir={profile}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory) -> Path:
    """Folder for screenshots: $VAE_NUMPY_TEST_ARTEFACTS, else a temporary one."""
    folder = os.environ.get("VAE_NUMPY_TEST_ARTEFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("browser-artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _console_errors(driver) -> list[str]:
    """The browser console's error messages since the last call."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _open(driver, path: Path | str) -> None:
    _console_errors(driver)  # forget what earlier pages logged
    driver.get(path if isinstance(path, str) else path.as_uri())


# --- the explorer -----------------------------------------------------------------------------

#: One model of every kind with a decoder; together they use every hidden activation, both
#: outputs, both plane modes and the label selector: kind -> (constructor, fit with labels,
#: dims).
EXPLORER_MODELS = {
    "vae": (lambda: VAE(64, (32,), 2, rng=0), False, None),
    "vae-gaussian-4d": (
        lambda: VAE(64, (32,), 4, likelihood="gaussian", activation="tanh", rng=1),
        False,
        None,
    ),
    "autoencoder": (
        lambda: Autoencoder(64, (32,), 3, loss="mse", activation="sigmoid", rng=2),
        False,
        (2, 0),
    ),
    "cvae": (lambda: ConditionalVAE(64, 10, (32,), 2, activation="elu", rng=3), True, None),
    "gmvae": (
        lambda: GaussianMixtureVAE(64, (32,), 2, n_components=10, activation="leaky_relu", rng=4),
        False,
        None,
    ),
    "ssvae": (
        lambda: SemiSupervisedVAE(64, 10, (32,), 3, activation="softplus", rng=5),
        True,
        None,
    ),
}


@pytest.fixture(scope="module")
def explorers(tmp_path_factory):
    """kind -> (model, page, plane): each model trained briefly on the digits, its page written."""
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    folder = tmp_path_factory.mktemp("explorers")
    pages = {}
    for kind, (make, labelled, dims) in EXPLORER_MODELS.items():
        model = make()
        fit_data = (train.x, train.y) if labelled else (train.x,)
        model.fit(*fit_data, epochs=3, batch_size=64, rng=0, progress=False)
        page = write_explorer(model, folder / f"{kind}.html", data=test.x, labels=test.y, dims=dims)
        codes = model.encode(test.x, test.y)[0] if labelled else model.code(test.x)
        extent = 3.0 if model.generative else None
        pages[kind] = (model, page, latent_plane(model.latent_dim, codes, dims=dims, extent=extent))
    return pages


def _decode(model, z: np.ndarray, label: int | None) -> np.ndarray:
    z = np.asarray(z, dtype=model.dtype).reshape(1, -1)
    return (model.decode(z) if label is None else model.decode(z, np.array([label])))[0]


def _canvas_greys(driver) -> np.ndarray:
    """The red channel of every pixel of the decoded image's canvas (grey levels 0-255)."""
    rgba = driver.execute_script(
        "const c = document.getElementById('decoded');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);"
    )
    pixels = np.array(rgba).reshape(-1, 4)
    assert np.all(pixels[:, 0] == pixels[:, 1]) and np.all(pixels[:, 3] == 255)
    return pixels[:, 0]


def _labels_of(model) -> list[int | None]:
    """Labels to decode with: a few for a conditional decoder, none otherwise."""
    return [0, 3, 9] if "y" in inspect.signature(model.decode).parameters else [None]


@pytest.mark.parametrize("kind", sorted(EXPLORER_MODELS))
def test_explorer_decodes_chosen_points_as_the_model_does(browser, explorers, kind):
    """At chosen plane points the page's latent point, values and pixels match Python's."""
    model, page, plane = explorers[kind]
    _open(browser, page)
    (u_lo, u_hi), (v_lo, v_hi) = plane.ranges[:2]
    points = [(0.0, 0.0), (u_lo, v_hi), (u_hi, v_lo), (0.3 * u_lo, 0.6 * v_hi), (1.7, -2.2)]
    for label in _labels_of(model):
        if label is not None:
            browser.execute_script("explorer.setLabel(arguments[0])", label)
        for u, v in points:
            state = browser.execute_script(
                "return explorer.moveTo(arguments[0], arguments[1])", u, v
            )
            coords = np.array([u, v, *plane.defaults[2:]])[: model.latent_dim]
            np.testing.assert_allclose(state["z"], plane.latent([coords])[0], atol=1e-9)
            expected = _decode(model, state["z"], label)
            worst = np.max(np.abs(np.array(state["values"]) - expected))
            assert worst <= VALUE_TOLERANCE, f"{kind} at ({u}, {v}), label {label}: off by {worst}"
            greys = np.round(255 * np.clip(expected, 0, 1))
            off = np.max(np.abs(_canvas_greys(browser) - greys))
            assert off <= 1, f"{kind} at ({u}, {v}): a pixel is {off} grey levels off"
    assert _console_errors(browser) == []


@pytest.mark.parametrize("kind", sorted(EXPLORER_MODELS))
def test_explorer_decode_api_matches_model_decode_at_random_latent_points(browser, explorers, kind):
    """explorer.decodeAt(z, label) equals model.decode(z) within 1e-5 at random z, |z| up to 4."""
    model, page, _ = explorers[kind]
    _open(browser, page)
    z = np.random.default_rng(0).uniform(-4, 4, size=(20, model.latent_dim))
    for label in _labels_of(model):
        values = browser.execute_script(
            "return arguments[0].map((z) => explorer.decodeAt(z, arguments[1]));",
            z.tolist(),
            label,
        )
        expected = np.stack([_decode(model, row, label) for row in z])
        np.testing.assert_allclose(np.array(values), expected, atol=VALUE_TOLERANCE, rtol=0)
    assert _console_errors(browser) == []


def test_explorer_sliders_move_along_the_directions_beyond_the_plane(browser, explorers):
    """With four latent dimensions, the two sliders move z along PC 3 and PC 4."""
    model, page, plane = explorers["vae-gaussian-4d"]
    _open(browser, page)
    assert browser.execute_script("return document.querySelectorAll('#sliders input').length") == 2
    browser.execute_script("explorer.setSlider(0, 0.8); explorer.setSlider(1, -0.5)")
    state = browser.execute_script("return explorer.moveTo(0.2, -0.1)")
    np.testing.assert_allclose(state["z"], plane.latent([[0.2, -0.1, 0.8, -0.5]])[0], atol=1e-9)
    assert np.max(np.abs(np.array(state["values"]) - _decode(model, state["z"], None))) <= 1e-5
    assert _console_errors(browser) == []


def test_pointer_moves_decode_under_the_pointer_and_a_click_pins(browser, explorers, artefacts):
    """Real pointer events: moving decodes the point under the pointer, a click pins it."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    model, page, plane = explorers["vae"]
    _open(browser, page)
    canvas = browser.find_element(By.ID, "plane")
    size = browser.execute_script(
        "return [arguments[0].clientWidth, arguments[0].clientHeight]", canvas
    )
    assert size == [480, 480]  # CSS pixels inside the border; offsets below are from the centre
    (u_lo, u_hi), (v_lo, v_hi) = plane.ranges[:2]
    left, top, inner_w, inner_h = 52, 12, 480 - 52 - 12, 480 - 12 - 40  # the page's margins
    for dx, dy in [(-100, -80), (60, 120)]:  # offsets from the canvas's centre, CSS pixels
        ActionChains(browser).move_to_element_with_offset(canvas, dx, dy).perform()
        state = browser.execute_script("return explorer.current()")
        x, y = 240 + dx, 240 + dy
        u = u_lo + (x - left) / inner_w * (u_hi - u_lo)
        v = v_lo + (top + inner_h - y) / inner_h * (v_hi - v_lo)
        pixel = (u_hi - u_lo) / inner_w
        assert abs(state["u"] - u) <= pixel and abs(state["v"] - v) <= pixel
        assert np.max(np.abs(np.array(state["values"]) - _decode(model, state["z"], None))) <= 1e-5
    ActionChains(browser).move_to_element_with_offset(canvas, -100, -80).click().perform()
    ActionChains(browser).move_to_element_with_offset(canvas, 90, 30).click().perform()
    pins = browser.execute_script("return explorer.pins()")
    assert len(pins) == 2
    assert browser.execute_script("return document.querySelectorAll('#pins canvas').length") == 2
    ActionChains(browser).move_to_element_with_offset(canvas, 20, -40).perform()
    browser.save_screenshot(str(artefacts / "explorer-pointer.png"))
    assert _console_errors(browser) == []


def test_explorer_shows_a_legend_and_a_label_selector_for_conditional_models(browser, explorers):
    """Ten legend entries for the digits; the selector exists exactly for decode(z, y) models."""
    for kind in ("vae", "cvae", "ssvae"):
        _open(browser, explorers[kind][1])
        legend = browser.execute_script(
            "return Array.from(document.querySelectorAll('#legend li')).map((li) => li.textContent)"
        )
        assert legend == [str(c) for c in range(10)]
        hidden = browser.execute_script("return document.getElementById('label-box').hidden")
        assert hidden == (kind == "vae")
    assert _console_errors(browser) == []


@pytest.mark.parametrize("data", ["unlabelled", "none"])
def test_explorer_of_a_one_dimensional_code_decodes_along_its_axis(browser, tmp_path, data):
    """A 1-D latent space, with unlabelled codes or none: the horizontal position is z."""
    test = load_dataset("digits", "test")
    model = VAE(64, (16,), 1, rng=0)
    page = write_explorer(model, tmp_path / "one.html", data=test.x if data != "none" else None)
    _open(browser, page)
    for u, v in [(-2.5, 0.3), (0.0, 0.0), (1.25, -0.7)]:
        state = browser.execute_script("return explorer.moveTo(arguments[0], arguments[1])", u, v)
        assert state["z"] == [u]
        assert np.max(np.abs(np.array(state["values"]) - _decode(model, [u], None))) <= 1e-5
    legend = browser.execute_script(
        "return Array.from(document.querySelectorAll('#legend li')).map((li) => li.textContent)"
    )
    assert legend == (["test set"] if data == "unlabelled" else [])
    assert _console_errors(browser) == []


@pytest.mark.parametrize("kind", sorted(EXPLORER_MODELS))
def test_explorer_screenshot_of_every_model_is_kept(browser, explorers, artefacts, kind):
    """Each model's page renders (a non-blank screenshot is saved as a test artefact)."""
    _, page, plane = explorers[kind]
    _open(browser, page)
    browser.execute_script(
        "explorer.moveTo(arguments[0], arguments[1]); explorer.pin();"
        "explorer.moveTo(arguments[2], arguments[3]);",
        *(0.5 * plane.ranges[0]),
        *(0.2 * plane.ranges[1]),
    )
    shot = artefacts / f"explorer-{kind}.png"
    browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert _console_errors(browser) == []


# --- the documentation site ---------------------------------------------------------------------
# Served over HTTP from 127.0.0.1, as a reader sees it once published (Sphinx's search fetches
# page summaries, which browsers refuse over file://); the server records every 404.


class _Site:
    """The built site served on 127.0.0.1: its base URL, folder, and the paths that 404ed."""

    def __init__(self, folder: Path) -> None:
        import functools
        import threading
        from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

        self.folder = folder
        self.missing: list[str] = []
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def send_error(self, code, message=None, explain=None):  # noqa: D102
                if code == 404 and self.path != "/favicon.ico":  # the browser's own guess
                    site.missing.append(self.path)
                super().send_error(code, message, explain)

            def log_message(self, format, *args):  # noqa: A002, D102 - quiet
                pass

        handler = functools.partial(Handler, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, page: Path) -> str:
        return self.base + page.relative_to(self.folder).as_posix()

    def file(self, url: str) -> Path | None:
        """The file behind a URL of this site (None for another site)."""
        parsed = urlparse(url)
        if not url.startswith(self.base):
            return None
        path = self.folder / unquote(parsed.path).lstrip("/")
        return path / "index.html" if path.is_dir() else path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def site(docs_site):
    """The documentation site (the ``docs_site`` build) served on 127.0.0.1."""
    served = _Site(Path(docs_site))
    yield served
    served.close()


#: Run in a page: every image's source, loaded afresh, with its natural width (0: broken).
IMAGE_CHECK = """
const done = arguments[arguments.length - 1];
const sources = [...new Set(Array.from(document.images).map((img) => img.currentSrc || img.src))];
Promise.all(sources.map((src) => new Promise((resolve) => {
  const probe = new Image();
  probe.onload = () => resolve([src, probe.naturalWidth]);
  probe.onerror = () => resolve([src, 0]);
  probe.src = src;
}))).then(done);
"""


def _site_pages(folder: Path) -> list[Path]:
    """Every HTML page of the built site but Sphinx's copies of sources and static files."""
    return sorted(
        p
        for p in folder.rglob("*.html")
        if not ({"_sources", "_static", "_images"} & set(p.relative_to(folder).parts))
    )


def _outside_the_site(message: str, site: _Site) -> bool:
    """A console message about a resource of another site (MathJax from its CDN), or the
    favicon that browsers request from the server's root unasked.

    Tests run offline: whether a remote resource loads says nothing about the site's own files.
    """
    url = message.split(" ", 1)[0]
    if url == site.base + "favicon.ico":  # asked for by the browser, not by a page
        return True
    return (
        url.startswith(("http://", "https://"))
        and not url.startswith(site.base)
        and "Failed to load resource" in message
    )


@pytest.mark.notebooks  # the docs build executes the lecture notebooks
@pytest.mark.slow
def test_docs_pages_and_images_load_without_errors(browser, site, artefacts):
    """Every page loads with no 404 and no console error, every image decodes, every link exists."""
    pages = _site_pages(site.folder)
    assert len(pages) > 5, f"only {len(pages)} pages in {site.folder}"
    problems = []
    n_images = 0
    for page in pages:
        _open(browser, site.url(page))
        for src, width in browser.execute_async_script(IMAGE_CHECK):
            n_images += 1
            if width == 0:
                problems.append(f"{page.name}: image {src} does not load")
        hrefs = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href]')).map((a) => a.href)"
        )
        for href in hrefs:
            target = site.file(href)
            if target is not None and not target.exists():
                problems.append(f"{page.name}: link to missing {href}")
        problems += [
            f"{page.name}: console: {m}"
            for m in _console_errors(browser)
            if not _outside_the_site(m, site)
        ]
        if page == site.folder / "index.html":
            browser.save_screenshot(str(artefacts / "docs-index.png"))
    problems += [f"404: {path}" for path in site.missing]
    assert n_images > 0, "the site shows no image at all"
    assert not problems, "\n".join(problems)


@pytest.mark.notebooks  # the docs build executes the lecture notebooks
@pytest.mark.slow
def test_docs_search_finds_kl_normal(browser, site, artefacts):
    """Sphinx's search page, run in the browser, lists the page documenting kl_normal."""
    from selenium.webdriver.support.ui import WebDriverWait

    assert (site.folder / "search.html").is_file(), "the site has no search page"
    _open(browser, site.base + "search.html?q=kl_normal")
    results_js = (
        "return Array.from(document.querySelectorAll('#search-results li a'))"
        ".map((a) => [a.textContent, a.href]);"
    )
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(results_js))
    results = browser.execute_script(results_js)
    browser.save_screenshot(str(artefacts / "docs-search-kl_normal.png"))
    assert any("kl_normal" in text for text, _ in results), results
    for _, href in results:
        target = site.file(href)
        assert target is not None and target.is_file(), f"search result {href} does not exist"
    assert [m for m in _console_errors(browser) if not _outside_the_site(m, site)] == []
    assert site.missing == []


@pytest.mark.notebooks  # the docs build executes the lecture notebooks
@pytest.mark.slow
def test_docs_explorer_page_embeds_a_working_explorer(browser, site, artefacts):
    """The site's explorer page shows the explorer in an iframe, and it decodes the plane."""
    from selenium.webdriver.common.by import By

    page = site.folder / "explorer.html"
    assert page.is_file(), "the site has no explorer page"
    _open(browser, site.url(page))
    frame = browser.find_element(By.CSS_SELECTOR, "iframe[src$='explorer.html']")
    browser.switch_to.frame(frame)
    try:
        info = browser.execute_script("return window.explorer && window.explorer.info")
        assert info and info["latentDim"] == 2 and info["nPoints"] == 297
        values = browser.execute_script("return explorer.moveTo(0.5, -0.5).values")
        assert len(values) == 64 and all(0 <= v <= 1 for v in values)
    finally:
        browser.switch_to.default_content()
    browser.save_screenshot(str(artefacts / "docs-explorer.png"))
    assert [m for m in _console_errors(browser) if not _outside_the_site(m, site)] == []
    assert site.missing == []

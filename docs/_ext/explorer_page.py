"""Sphinx extension: the documentation's latent-space explorer, built with the site.

During an HTML build this extension trains a small VAE on the bundled 8x8 digits (a 2-D latent
space, 128 hidden units, seeded: a few seconds on one core) and writes its explorer
(:func:`vae_numpy.plots.explorer.write_explorer`) to ``_static/explorer.html`` in the output,
where ``docs/explorer.md`` embeds it in an ``<iframe>``. The page is rebuilt from the code of the
checkout on every build, so the site always shows what ``vae-numpy explore`` writes today.

Configuration (``conf.py``): ``explorer_page_epochs`` (default 60) and ``explorer_page_seed``
(default 0).

Run as a script, it writes the same page, and the README's screenshot of it
(``docs/figures/explorer.png``, three points pinned) with headless Chromium::

    python docs/_ext/explorer_page.py --screenshot docs/figures/explorer.png
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from sphinx.util import logging

#: Where the page lands, relative to the HTML output folder.
EXPLORER_FILE = "_static/explorer.html"

logger = logging.getLogger(__name__)


def build_explorer(outdir: Path, *, epochs: int = 60, seed: int = 0) -> Path:
    """Train the digits VAE and write its explorer to ``outdir / EXPLORER_FILE``.

    Parameters
    ----------
    outdir : Path
        The HTML output folder.
    epochs : int
        Training epochs over the 1,500 training digits.
    seed : int
        Seed of the initial weights and of the minibatches.

    Returns
    -------
    Path
        The written page.
    """
    from vae_numpy.data import load_dataset
    from vae_numpy.plots.explorer import write_explorer
    from vae_numpy.vae import VAE

    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    model = VAE(train.n_features, (128,), 2, rng=seed)
    model.fit(train.x, epochs=epochs, batch_size=64, rng=seed, progress=False)
    return write_explorer(
        model,
        Path(outdir) / EXPLORER_FILE,
        data=test.x,
        labels=test.y,
        image_shape=test.image_shape,
        title="VAE on digits: latent-space explorer",
    )


def _on_build_finished(app: Any, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    start = time.perf_counter()
    path = build_explorer(
        Path(app.outdir),
        epochs=app.config.explorer_page_epochs,
        seed=app.config.explorer_page_seed,
    )
    logger.info(f"explorer: wrote {path} in {time.perf_counter() - start:.1f} s")


def setup(app: Any) -> dict[str, Any]:
    """Register the configuration values and the build step."""
    app.add_config_value("explorer_page_epochs", 60, "html")
    app.add_config_value("explorer_page_seed", 0, "html")
    app.connect("build-finished", _on_build_finished)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def screenshot(page: Path, png: Path, *, width: int = 940, height: int = 610) -> Path:
    """Open ``page`` in headless Chromium, pin three points, and save the view as ``png``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    profile = tempfile.mkdtemp(prefix="explorer-page-")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(
        service=Service(shutil.which("chromedriver") or "chromedriver"), options=options
    )
    try:
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        driver.get(page.resolve().as_uri())
        driver.execute_script(
            "for (const [u, v] of [[-1.6, 0.9], [0.9, 1.4], [1.3, -1.2]]) {"
            " explorer.moveTo(u, v); explorer.pin(); }"
            "explorer.moveTo(-0.2, -1.3);"
        )
        png.parent.mkdir(parents=True, exist_ok=True)
        png.write_bytes(driver.get_screenshot_as_png())
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return png


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the documentation's explorer page.")
    parser.add_argument("--out", default=None, help="output folder (default: a temporary one)")
    parser.add_argument("--screenshot", default=None, metavar="PNG", help="also save a view")
    args = parser.parse_args()
    folder = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="explorer-"))
    written = build_explorer(folder)
    print(f"wrote {written}")
    if args.screenshot:
        print(f"wrote {screenshot(written, Path(args.screenshot))}")

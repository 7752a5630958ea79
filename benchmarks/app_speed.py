"""App speed: the two interactions users wait for, timed through the page callbacks themselves.

    python benchmarks/app_speed.py                       # runs/fast-default
    python benchmarks/app_speed.py --run RUN --repeats 40

1. upload -> prediction + Grad-CAM: `load_uploads` (decode + preprocess a PNG photo) then
   `explain_item` (predict, Grad-CAM, overlay PNG, bar chart) and the JSON of its outputs, each
   time a different photo so no cache helps. Target: p95 < 300 ms warm (model loaded).
2. drill-down gallery of 50 images with Grad-CAM overlays: `show_gallery` on successive pages of
   a large confusion-matrix cell (fresh images each time, one Grad-CAM batch per page), then the
   same pages again (cached heatmaps). Target: < 1 s warm.

The callbacks run inside a Flask request context of a real app, as under the server; only the
browser's rendering is left out (the tests/test_*_browser.py files cover that).
"""

from __future__ import annotations

import argparse
import base64
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from plotly.io.json import to_json_plotly

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

UPLOAD_TARGET_MS = 300
GALLERY_TARGET_MS = 1000


def photo_data_url(image: np.ndarray) -> str:
    """A test image as a 'product photo' upload: dark garment on white, 168 px PNG."""
    canvas = Image.new("L", (168, 168), 255)
    canvas.paste(Image.fromarray(255 - image).resize((120, 120), Image.Resampling.BICUBIC), (24, 24))
    buffer = io.BytesIO()
    canvas.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def percentiles(ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms   (n={len(ms)})"


def bench_upload(predict, run_id: str, layer: str, images: np.ndarray, method: str, repeats: int) -> list[float]:
    times = []
    for i in range(repeats + 1):
        url = photo_data_url(images[i])
        start = time.perf_counter()
        store = predict.load_uploads([url], [f"photo{i}.png"])
        # use_photo_run False: the run asked for answers the photo (as with the page's switch off)
        out = predict.explain_item(store, 0, run_id, method, predict.PREDICTED, layer, 0.5, False)
        to_json_plotly(out)  # what Dash sends back to the browser
        elapsed = (time.perf_counter() - start) * 1000
        assert out[1] and out[1].startswith("data:image/png"), "no overlay rendered"
        if i:  # the first call warms TensorFlow's traced functions
            times.append(elapsed)
    return times


def bench_gallery(errors, run_id: str, cell: dict, pages: int) -> tuple[list[float], list[float]]:
    cold, warm = [], []
    for timings in (cold, warm):
        for page in range(1, pages + 1):
            start = time.perf_counter()
            tiles = errors.show_gallery(cell, page, True, run_id)[0]  # (tiles, title, page count, pager class)
            to_json_plotly(tiles)
            timings.append((time.perf_counter() - start) * 1000)
            assert len(tiles.children) == errors.PAGE_SIZE
    return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-dir", default=str(REPO / "runs"))
    parser.add_argument("--run", default="fast-default")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pages", type=int, default=6)
    args = parser.parse_args()

    from workbench import artifacts
    from workbench.app import create_app
    from workbench.explain import get_explainer

    app = create_app(args.runs_dir)
    import pages.errors as errors  # after create_app: the pages need an app with use_pages
    import pages.predict as predict

    with app.server.test_request_context():
        start = time.perf_counter()
        explainer = get_explainer(args.runs_dir, args.run)
        images = artifacts.test_images()
        print(f"run {args.run}: model + test images loaded in {time.perf_counter() - start:.1f} s (cold start)")
        layer = explainer.layer_choices()[0]
        rng = np.random.default_rng(0)
        photos = images[rng.choice(len(images), args.repeats + 1, replace=False)]

        print(f"\nupload -> prediction + explanation (target p95 < {UPLOAD_TARGET_MS} ms, warm)")
        results = {}
        for method in ("gradcam", "gradcam++", "saliency", "smoothgrad"):
            results[method] = bench_upload(predict, args.run, layer, photos, method, args.repeats)
            print(f"  {method:<11} {percentiles(results[method])}")

        matrix = artifacts.confusion(args.runs_dir, args.run)
        true, pred = np.unravel_index(np.argmax(np.where(np.eye(10, dtype=bool), matrix, 0)), matrix.shape)
        cell = {"true": int(true), "pred": int(pred)}
        pages = min(args.pages, int(matrix[true, pred]) // errors.PAGE_SIZE)
        print(f"\ngallery page of {errors.PAGE_SIZE} images with Grad-CAM overlays "
              f"(target < {GALLERY_TARGET_MS} ms, warm; cell {cell}, {pages} pages)")
        cold, warm = bench_gallery(errors, args.run, cell, pages)
        print(f"  new images    {percentiles(cold)}")
        print(f"  cached maps   {percentiles(warm)}")

    ok = (np.percentile(results["gradcam"], 95) < UPLOAD_TARGET_MS and max(cold) < GALLERY_TARGET_MS)
    print(f"\ntargets {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

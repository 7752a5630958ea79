"""Map speed: is the 10,000-point embedding map responsive? Server side and in a real browser.

    python benchmarks/map_speed.py                      # runs/fast-default, 3 page loads, 5 selections
    python benchmarks/map_speed.py --run photo-default --repeats 5

1. Server: the figure callback (`show_map`: stored map + predictions -> Scattergl figure) cold and
   warm, and the size of the figure's JSON (what the browser downloads).
2. Browser (headless Chromium, the app on Dash's threaded dev server): time to first paint = from
   navigating to /map until the WebGL scatter and its legend are drawn; time to a selection = from
   the graph reporting a selection (plotly_selected, as a lasso does, 500 points) until the gallery's
   48 tiles are in the page (selection callback + gallery callback + rendering).

The map must be stored already (`workbench embed RUN`), else the first load times the UMAP.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

from plotly.io.json import to_json_plotly

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PORT = 8071
POLL_S = 0.02  # browser polling step: the resolution of the browser timings
SELECT_JS = """
const gd = document.querySelector('#map-graph .js-plotly-plot');
const points = [];
gd.data.forEach((trace, c) => {
  const n = trace.customdata.length;
  for (let k = 0; k < arguments[1]; k++) points.push({curveNumber: c, pointNumber: (k * 7 + arguments[0]) % n});
});
gd.emit('plotly_selected', {points: points});
return points.length;
"""


def wait(driver, script: str, timeout: float = 120.0) -> float:
    """Seconds until the JavaScript expression `script` is truthy."""
    start = time.perf_counter()
    while not driver.execute_script(f"return {script}"):
        if time.perf_counter() - start > timeout:
            raise TimeoutError(script)
        time.sleep(POLL_S)
    return time.perf_counter() - start


def bench_server(app, run_id: str) -> None:
    import pages.map as page  # after create_app: the pages need an app with use_pages

    with app.server.test_request_context():
        times = []
        for _ in range(3):
            start = time.perf_counter()
            fig, _hint = page.show_map(run_id, "true")
            times.append(time.perf_counter() - start)
    size = len(to_json_plotly(fig))
    print(f"server: figure callback {min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms (map read once); "
          f"figure JSON {size / 1e3:.0f} kB for {sum(len(t.x) for t in fig.data):,} points")


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1440,1100"):
        options.add_argument(flag)
    options.binary_location = "/usr/bin/chromium"
    return webdriver.Chrome(options=options)


def bench_browser(url: str, repeats: int, selections: int) -> None:
    driver = browser()
    try:
        paints = []
        for _ in range(repeats):
            start = time.perf_counter()
            driver.get(url + "/map")
            wait(driver, "document.querySelectorAll('#map-graph .legendtext').length === 10 && "
                         "document.querySelector('#map-graph canvas') !== null")
            paints.append(time.perf_counter() - start)
        picks = []
        for i in range(selections):
            driver.execute_script("const g = document.getElementById('map-gallery'); g.dataset.old = '1'; "
                                  "g.querySelectorAll('.tile').forEach(t => t.remove());")
            start = time.perf_counter()
            driver.execute_script(SELECT_JS, i * 13, 50)
            wait(driver, "document.querySelectorAll('#map-tiles .tile').length === 48")
            picks.append(time.perf_counter() - start)
    finally:
        driver.quit()
    print(f"browser: time to first paint {paints[0]:.2f} s first load (Dash bundles + figure), "
          f"median {statistics.median(paints[1:] or paints):.2f} s on reloads ({repeats} loads)")
    print(f"browser: selection of 500 points -> 48 tiles shown: first {picks[0]:.2f} s, "
          f"median {statistics.median(picks):.2f} s, max {max(picks):.2f} s ({selections} selections)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="fast-default")
    parser.add_argument("--runs-dir", default=str(REPO / "runs"))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--repeats", type=int, default=3, help="page loads")
    parser.add_argument("--selections", type=int, default=5)
    args = parser.parse_args()

    from workbench.app import create_app

    app = create_app(args.runs_dir, data_dir=args.data_dir)
    threading.Thread(target=lambda: app.run(port=PORT, threaded=True), daemon=True).start()
    time.sleep(2)
    bench_browser(f"http://127.0.0.1:{PORT}", args.repeats, args.selections)
    bench_server(app, args.run)  # last: importing the page module again registers its callbacks twice
    return 0


if __name__ == "__main__":
    sys.exit(main())

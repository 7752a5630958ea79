"""Faithfulness of every explanation method on a run: deletion / insertion AUC and the sanity check.

    python benchmarks/faithfulness.py                      # the default run, 100 test images
    python benchmarks/faithfulness.py --run RUN --images 20 --runs-dir runs

Writes RUN/faithfulness.json (the table the Model report shows) and prints it as a markdown table.
Deletion AUC: lower is better; insertion AUC: higher is better; "random" is the floor.
"""

from __future__ import annotations

import argparse
import sys
import time

from model import runs
from workbench import trust
from workbench.explain import METHODS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=runs.DEFAULT_RUN_ID)
    parser.add_argument("--runs-dir", default=str(runs.PROJECT_RUNS_DIR))
    parser.add_argument("--images", type=int, default=trust.SAMPLE.images)
    args = parser.parse_args()
    start = time.perf_counter()
    try:
        table = trust.run_table(args.runs_dir, args.run, trust.Sample(images=args.images))
    except runs.RunError as exc:  # an unknown or damaged run: one line, as the CLI says it
        sys.exit(f"error: {exc}")
    print(f"run {args.run}: {table['n_images']} test images, baseline {table['baseline']}, "
          f"target = {table['target']} ({time.perf_counter() - start:.0f} s)\n")
    print("| method | deletion AUC (lower is better) | insertion AUC (higher is better) | sanity check |")
    print("|---|---|---|---|")
    for method, row in table["methods"].items():
        sanity = table["sanity"].get(method)
        check = ("passed" if sanity["passed"] else "FAILED") + " (rho " + \
            ", ".join(f"{s['rho']:.2f}" for s in sanity["steps"]) + ")" if sanity else "-"
        d, i = row["deletion"], row["insertion"]
        print(f"| {METHODS.get(method, method)} | {d['mean']:.3f} ± {d['ci95']:.3f} | "
              f"{i['mean']:.3f} ± {i['ci95']:.3f} | {check} |")


if __name__ == "__main__":
    main()

"""How well does the label-issue finder find labels we broke on purpose? And the test set's top suspects.

    python benchmarks/label_noise.py                      # flip 2 % of the 60k training labels, find them
    python benchmarks/label_noise.py --noise 0.02 --seed 0 --folds 4 --epochs 4
    python benchmarks/label_noise.py --sheet              # only the contact sheet of the run's top-20 test suspects

Flips a seeded random 2 % of the training labels, each to a different class chosen uniformly, runs
the same K-fold + cleanlab finder as `workbench label-issues` (model/label_issues.py) on the noisy
labels, and prints precision and recall of the flagged set against the flipped set, plus the time
and training images/s. Fashion-MNIST has real label errors too: the finder flags some of those as
well, and they count against precision here, so precision is a lower bound.

--sheet writes docs/screenshots/label_suspects_test_top20.png from RUN's label_issues.parquet (or
from its test predictions when that was never computed).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model import runs
from model.data import CLASS_NAMES, NUM_CLASSES, load_raw
from model.label_issues import FoldSettings, out_of_fold_probabilities, rank_label_issues

SHEET = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "label_suspects_test_top20.png"


def flip_labels(labels: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, indices flipped): a seeded random `share` of labels moved to another class."""
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(len(labels), int(round(share * len(labels))), replace=False))
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, NUM_CLASSES, len(flipped))) % NUM_CLASSES
    return noisy, flipped


def measure(args: argparse.Namespace) -> None:
    raw = load_raw(args.data_dir, progress=False)
    images, labels = raw["train_images"], raw["train_labels"]
    noisy, flipped = flip_labels(labels, args.noise, args.seed)
    settings = FoldSettings(folds=args.folds, epochs=args.epochs, width=args.width)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache, tqdm(total=settings.folds * settings.epochs, unit="epoch") as bar:
        probs = out_of_fold_probabilities(images, noisy, cache, settings, lambda done, _total: bar.update(done - bar.n))
    seconds = time.perf_counter() - start
    found = rank_label_issues(noisy, probs, "train")["index"].to_numpy()
    hits = np.intersect1d(found, flipped)
    top = found[:len(flipped)]
    trained = settings.folds * settings.epochs * len(labels) * (settings.folds - 1) / settings.folds
    print(f"flipped {len(flipped):,} of {len(labels):,} training labels ({args.noise:.1%}, seed {args.seed}); "
          f"{settings.folds} folds x {settings.epochs} epochs, width {settings.width}")
    print(f"out-of-fold accuracy against the true labels: {(probs.argmax(axis=1) == labels).mean():.4f}")
    print(f"flagged {len(found):,}: precision {len(hits) / max(len(found), 1):.3f}, "
          f"recall {len(hits) / len(flipped):.3f} ({len(hits):,} of the flipped found)")
    print(f"top {len(flipped):,} of the ranking: {len(np.intersect1d(top, flipped)) / len(flipped):.3f} flipped")
    print(f"time {seconds:.0f} s for the K-fold, {trained / seconds:,.0f} training images/s")


def contact_sheet(run_dir: Path, data_dir, count: int = 20, path: Path = SHEET) -> Path:
    """A grid of the run's top test suspects: image, index, given -> suggested."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from model.label_issues import read_label_issues

    if (run_dir / runs.LABEL_ISSUES).is_file():
        issues = read_label_issues(run_dir)
        issues = issues[issues["split"] == "test"]
    else:
        frame = runs.read_predictions(run_dir)
        issues = rank_label_issues(frame["label"].to_numpy(), frame[runs.PROB_COLUMNS].to_numpy(), "test")
    images = load_raw(data_dir, progress=False)["test_images"]
    figure, axes = plt.subplots(4, 5, figsize=(10, 9.2))
    for ax, row in zip(axes.flat, issues.head(count).itertuples()):
        ax.imshow(images[row.index], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"#{row.index}  ({row.p_suggested:.2f})\n{CLASS_NAMES[row.given]} → {CLASS_NAMES[row.suggested]}",
                     fontsize=8.5)
        ax.axis("off")
    figure.suptitle(f"Top {count} suspected label errors of the test set ({run_dir.name}): "
                    "index (p suggested), given → suggested", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = FoldSettings()
    parser.add_argument("--noise", type=float, default=0.02, help="share of training labels flipped")
    parser.add_argument("--seed", type=int, default=0, help="which labels are flipped, and to what")
    parser.add_argument("--folds", type=int, default=defaults.folds)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--width", type=int, default=defaults.width)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--run", default=runs.DEFAULT_RUN_ID, help="the run whose test suspects --sheet shows")
    parser.add_argument("--runs-dir", default=str(runs.PROJECT_RUNS_DIR))
    parser.add_argument("--sheet", action="store_true", help="only write the contact sheet")
    args = parser.parse_args()
    if args.sheet:
        print(f"wrote {contact_sheet(runs.run_path(args.runs_dir, args.run), args.data_dir)}")
    else:
        measure(args)


if __name__ == "__main__":
    main()

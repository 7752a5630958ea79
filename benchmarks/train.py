"""Training benchmark: test accuracy, wall time, training images/s and peak memory of a recipe.

    python benchmarks/train.py --recipe fast                         # the default recipe, full data
    python benchmarks/train.py --recipe resnet50-cpu --max-minutes 20  # a bounded ResNet50 run

Numbers, not pass/fail: the machine's load average is printed beside them, because on a shared
CPU the same run takes longer when others are busy. Runs go to a scratch folder unless --runs-dir.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import keras


class Meter(keras.callbacks.Callback):
    """Counts training images and time spent in training batches; stops after max_seconds if given."""

    def __init__(self, batch_size: int, max_seconds: float | None = None):
        super().__init__()
        self.batch_size, self.max_seconds = batch_size, max_seconds
        self.images, self.batch_seconds = 0, 0.0

    def on_train_begin(self, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.batch_seconds += time.perf_counter() - self.batch_started
        self.images += self.batch_size
        if self.max_seconds and time.perf_counter() - self.started > self.max_seconds:
            self.model.stop_training = True  # ends the epoch early; it is still validated and saved


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    from model import runs
    from model.recipes import RECIPES, get_recipe
    from model.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="fast", choices=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--limit", type=int, default=None, help="train on only this many images")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--width", type=int, default=None, help="compact CNN: channels of the first stage")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--precision", default=None, choices=["auto", "float32", "mixed_bfloat16"])
    parser.add_argument("--max-minutes", type=float, default=None, help="stop training after this long")
    parser.add_argument("--runs-dir", default=None, help="keep the run here (default: a scratch folder)")
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    recipe = get_recipe(args.recipe, epochs=args.epochs, input_size=args.input_size, weights=args.weights,
                        precision=args.precision, width=args.width)
    runs_dir = args.runs_dir or tempfile.mkdtemp(prefix="bench-runs-")
    meter = Meter(recipe.batch_size, None if args.max_minutes is None else args.max_minutes * 60)
    print(f"recipe {recipe.name}: {recipe}\nload average before: {load_average()} ({os.cpu_count()} cores)")
    started = time.perf_counter()
    run_dir = train(recipe, runs_dir, args.run_id or f"bench-{recipe.name}", data_dir=args.data_dir,
                    limit=args.limit, progress=not args.no_progress, extra_callbacks=[meter])
    wall = time.perf_counter() - started
    metrics = runs.read_metrics(run_dir)
    history = runs.read_history(run_dir)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes

    lo, hi = metrics["test_accuracy_ci95"]
    print(f"\n== benchmark: recipe {recipe.name} ==")
    print(f"test accuracy        {metrics['test_accuracy']:.4f}  (95% CI {lo:.4f}-{hi:.4f}), "
          f"best val accuracy {history['val_accuracy'].max():.4f}")
    print(f"epochs               {len(history)} of {recipe.epochs} ({meter.images:,} training images seen)")
    print(f"wall time            {wall:.0f} s total (data, training, validation, test evaluation), "
          f"{metrics['train_seconds']:.0f} s in fit epochs")
    print(f"training images/s    {meter.images / max(meter.batch_seconds, 1e-9):.0f} "
          f"(training steps only)")
    print(f"inference images/s   {metrics['inference_images_per_second']:.0f}")
    print(f"peak memory (RSS)    {peak_mib:.0f} MiB")
    print(f"model size           {(run_dir / runs.MODEL).stat().st_size / 1e6:.2f} MB")
    print(f"load average after   {load_average()}")
    print(f"run folder           {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The handlers of the `workbench` subcommands: each does its job through model/ or workbench/ and
prints the outcome; the return value is the exit code.

    run_data      where the data is, that it verifies, per-class counts per split
    run_train     a recipe with the command line's overrides (or N local workers)
    run_evaluate  re-evaluate a run on the test set
    run_export    ONNX / TFLite export with its parity check
    run_import    import a model trained elsewhere as a run
    run_predict   classify image files: 0 all classified, 1 some failed, 2 none
    run_label_issues  suspected label errors (K-fold + cleanlab) and near-duplicates of a run
    run_serve     the Dash workbench and JSON API (gunicorn, or Dash's dev server with --debug)
    run_embed     the embedding map of a run (stored in the run folder)
    run_familiarity  how far inputs may lie from the training images before they are flagged
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from model import runs
from model.errors import ImageError


def run_data(args: argparse.Namespace) -> int:
    """`workbench data`: where the data is, that it verifies, and per-class counts per split."""
    from model.data import CLASS_NAMES, FILES, class_counts, find_data_dir, load_splits

    folder, source = find_data_dir(args.data_dir)
    print(f"data folder: {folder}  (from {source})")
    splits = load_splits(args.data_dir, val_size=args.val_size, seed=args.seed)
    for spec in FILES.values():
        print(f"  ok  {spec.name}  md5 {spec.md5}  {spec.count} items")
    counts = {name: class_counts(getattr(splits, name).labels) for name in ("train", "val", "test")}
    print(f"\nsplit sizes: train {len(splits.train)}, val {len(splits.val)} "
          f"(held out of the 60,000 training images, seed {args.seed}), test {len(splits.test)}")
    print(f"\n{'class':<14}{'train':>8}{'val':>8}{'train+val':>11}{'test':>8}")
    for i, name in enumerate(CLASS_NAMES):
        tr, va, te = counts["train"][i], counts["val"][i], counts["test"][i]
        print(f"{name:<14}{tr:>8,}{va:>8,}{tr + va:>11,}{te:>8,}")
    return 0


def run_train(args: argparse.Namespace) -> int:
    """`workbench train`: the recipe with the command line's overrides."""
    from model import distributed
    from model.recipes import get_recipe
    from workbench.cli.launch import launch_local_workers, sigterm_raises, worker_argv

    if getattr(args, "local_workers", None) is not None:
        # Try multi-worker training on one machine: n copies of this command on 127.0.0.1.
        return launch_local_workers(args.local_workers, worker_argv(args))
    cluster = distributed.read_tf_config()
    recipe = get_recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size,
                        learning_rate=args.learning_rate, input_size=args.input_size,
                        weights=args.weights, val_size=args.val_size, seed=args.seed,
                        precision=args.precision, width=getattr(args, "width", None))
    from model.train import train

    try:
        stop = sigterm_raises(lambda _signum: Terminated("terminated (SIGTERM)")) if cluster is None \
            else contextlib.nullcontext()  # a cluster's workers: TensorFlow's own handling
        with stop:
            run_dir = train(recipe, args.runs_dir, args.run_id, data_dir=args.data_dir, limit=args.limit,
                            progress=not args.no_progress)
    except (KeyboardInterrupt, Terminated) as exc:
        backup = Path(args.runs_dir) / (args.run_id or f"{recipe.name}-{recipe.seed}") / runs.BACKUP_DIR
        kept = backup.is_dir() and any(backup.iterdir())
        print(f"{str(exc) or 'interrupted'}: " + (f"finished epochs are kept in {backup}; the same command resumes "
              "from there" if kept else "no epoch had finished, so nothing was kept; the same command starts "
              "it again"), file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    if not distributed.is_chief(cluster):
        print(f"worker {cluster.index} of {cluster.num_workers} done; the chief (worker 0) writes {run_dir}")
        return 0
    metrics = runs.read_metrics(run_dir)
    print(f"run {run_dir.name}: test accuracy {metrics['test_accuracy']:.4f} "
          f"(95% CI {metrics['test_accuracy_ci95'][0]:.4f}-{metrics['test_accuracy_ci95'][1]:.4f}), "
          f"macro F1 {metrics['macro_f1']:.4f}, ECE {metrics['ece']:.4f}, "
          f"{metrics['train_seconds']:.0f} s training -> {run_dir}")
    return 0


class Terminated(Exception):
    """SIGTERM during training (a scheduler or `kill`): stopped like Ctrl-C, between two steps."""


def run_evaluate(args: argparse.Namespace) -> int:
    """`workbench evaluate RUN`: re-evaluate and print the headline numbers."""
    from model.evaluate import evaluate_run

    run_dir = runs.run_path(args.runs_dir, args.run)
    previous = previous_accuracy(run_dir)
    metrics = evaluate_run(run_dir, data_dir=args.data_dir)
    lo, hi = metrics["test_accuracy_ci95"]
    print(f"run {args.run}: test accuracy {metrics['test_accuracy']:.4f} (95% CI {lo:.4f}-{hi:.4f}) "
          f"on {metrics['n_test']} images, macro F1 {metrics['macro_f1']:.4f}, ECE {metrics['ece']:.4f}")
    if previous is not None:
        print(f"previous metrics.json accuracy: {previous:.4f}")
    for name, scores in metrics["per_class"].items():
        print(f"  {name:<12} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}  "
              f"f1 {scores['f1']:.3f}")
    return 0


def previous_accuracy(run_dir) -> float | None:
    """The accuracy metrics.json held before evaluate rewrites it; None when there is none or it is
    unreadable (evaluate exists to write it again)."""
    try:
        return runs.read_metrics(run_dir).get("test_accuracy") if (run_dir / runs.METRICS).is_file() else None
    except runs.RunError as exc:
        print(f"note: {exc}; it is written anew", file=sys.stderr)
        return None


def run_export(args: argparse.Namespace) -> int:
    """`workbench export RUN`: export to --format (with --quantize), then print the parity check."""
    from model.export import export_and_check

    run_dir = runs.run_path(args.runs_dir, args.run)
    path, result = export_and_check(run_dir, args.format, getattr(args, "quantize", "none") or "none",
                                    args.data_dir)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    print(result.summary())
    return 0


def run_import(args: argparse.Namespace) -> int:
    """`workbench import PATH --run-id ID`: the new run folder, the convention chosen and why."""
    from model.importer import import_model

    result = import_model(args.path, args.runs_dir, args.run_id, input_scale=args.input_scale,
                          class_order=args.class_order, trust_code=args.trust_model_code,
                          data_dir=args.data_dir, progress=lambda message: print(f"  {message}", file=sys.stderr))
    conv = result.convention
    print(f"imported {Path(args.path).name} as run {args.run_id} -> {result.run_dir}")
    print(f"input: {conv['layout']} {conv['height']}x{conv['width']}x{conv['channels']}, pixels {conv['scale']}")
    for note in result.notes:
        print(f"  {note}")
    print(f"Grad-CAM layer: {result.gradcam_layer or 'none (explanations off)'}")
    print(f"test accuracy {result.test_accuracy:.4f} on the 10,000 test images")
    return 0


def run_label_issues(args: argparse.Namespace) -> int:
    """`workbench label-issues RUN`: the K-fold probabilities (cached, resumable), then cleanlab."""
    from tqdm import tqdm

    from model.label_issues import FoldSettings, compute_label_issues

    settings = FoldSettings(folds=args.folds, epochs=args.epochs, width=args.width, limit=args.limit)
    run_dir = runs.run_path(args.runs_dir, args.run)
    with tqdm(total=settings.folds * settings.epochs, unit="epoch", disable=args.no_progress,
              desc="K-fold (folds x epochs)") as bar:
        summary = compute_label_issues(run_dir, args.data_dir, settings,
                                       lambda done, total: bar.update(done - bar.n))
    rate = settings.folds * settings.epochs * summary["n_train"] * (settings.folds - 1) / settings.folds
    print(f"run {args.run}: {summary['test_suspects']} test and {summary['train_suspects']} training suspects; "
          f"out-of-fold accuracy {summary['oof_accuracy']:.4f} on {summary['n_train']:,} training images; "
          + (f"{summary['near_duplicates']} train/test near-duplicates" if summary["near_duplicates"] is not None
             else f"no near-duplicate search (no {runs.MODEL} to take features from)"))
    if summary["reused"]:
        print(f"K-fold probabilities reused from {run_dir / runs.LABEL_ISSUES_DIR} (same settings)")
    else:
        print(f"K-fold: {summary['seconds']:.0f} s, {rate / summary['seconds']:,.0f} training images/s "
              f"(a resumed run counts only the folds it trained in the time, so the rate reads high)")
    print(f"-> {run_dir / runs.LABEL_ISSUES}, {run_dir / runs.NEAR_DUPLICATES}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    """`workbench predict FILE...`: 0 when every file was classified, 1 when some failed, 2 when none."""
    from workbench.classify import classify, low_confidence_threshold, run_for_photos

    low = args.low_confidence if args.low_confidence is not None else low_confidence_threshold()
    answers: list[dict] = [{} for _ in args.files]
    readable = []
    for index, path in enumerate(args.files):
        try:
            readable.append((index, path, read_file(path)))
        except ImageError as exc:
            answers[index] = {"name": path, "index": index, "error": exc.code, "detail": str(exc)}
    run_id = args.run or runs.DEFAULT_RUN_ID
    runs_dir = runs.locate_runs_dir(args.runs_dir or runs.DEFAULT_RUNS_DIR, run_id, given=bool(args.runs_dir))
    run_id = run_for_photos(runs_dir, args.run) or run_id
    batch = classify([(path, data) for _, path, data in readable], runs_dir, run_id, args.backend,
                     top=args.top, low_confidence=low, box=args.box, imagenet=not args.no_imagenet)
    for (index, _, _), item in zip(readable, batch.items):
        answers[index] = {**cli_answer(item, batch), "index": index}
    if args.json:
        print(json.dumps({"run_id": run_id, "results": answers}, indent=2))
    else:
        for answer in answers:
            print(format_text(answer, low), file=sys.stderr if "error" in answer else sys.stdout)
    failed = sum("error" in a for a in answers)
    return 0 if failed == 0 else (2 if failed == len(answers) else 1)


def cli_answer(item, batch) -> dict:
    """An item's answer as the CLI prints it: the API's fields plus the run and per-file timing."""
    if item.error is not None:
        return item.answer
    return {**item.answer, "run_id": batch.run_id,
            "timing_ms": {"preprocess": round(item.preprocess_ms, 2), "predict": round(batch.predict_ms, 2)}}


def read_file(path: str) -> bytes:
    """A file's bytes, or ImageError when it cannot be read (missing, a folder, no permission)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"file not found: {path}", "not_found") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path} is a folder, not an image file", "not_a_file") from exc
    except OSError as exc:
        raise ImageError(f"cannot read {path}: {exc.strerror or exc}", "unreadable") from exc


def format_text(answer: dict, threshold: float) -> str:
    """One file's answer as a line (or a line plus indented runners-up); a flagged one says why, as
    the Predict page does: under the threshold, and the warnings."""
    if "error" in answer:
        return f"{answer['name']}: error ({answer['error']}): {answer['detail']}"
    under = [f"under the {threshold:.0%} threshold"] if answer["probability"] < threshold else []
    reasons = "; ".join(under + list(answer.get("warnings") or []))
    if not answer.get("warnings"):
        reasons += ("; the model is unsure between its top classes. For a photo: a plain background, the garment "
                    "filling the frame, or --box around it may help")
    hint = f"  [low confidence: {reasons}]" if answer["low_confidence"] else ""
    others = ", ".join(f"{c['label']} {c['probability']:.1%}" for c in answer["top"][1:])
    line = f"{answer['name']}: {answer['label']} {answer['probability']:.1%}{hint}"
    return line + (f"\n    then: {others}" if others else "") + imagenet_text(answer.get("imagenet"))


def imagenet_text(seen: dict | None) -> str:
    """The ImageNet view's line under an answer: what it saw, or why it was skipped."""
    if not seen:
        return ""
    if "skipped" in seen:
        return f"\n    ImageNet view skipped: {seen['skipped']}"
    return (f"\n    ImageNet view: {seen['imagenet_class']} {seen['probability']:.1%} (garment names "
            f"{seen['garment_share']:.0%} of its belief), joined with the run's own answer")


def run_serve(args: argparse.Namespace) -> int:
    """`workbench serve`: gunicorn with --workers processes (Dash's dev server with --debug)."""
    from workbench.app import create_app, serve_gunicorn

    runs_dir = Path(args.runs_dir)
    if not runs_dir.is_dir():
        raise runs.RunError(f"runs folder {runs_dir} not found")
    print(f"workbench: {len(runs.list_runs(runs_dir))} run(s) in {runs_dir}, backend {args.backend}; "
          f"open http://{args.host}:{args.port}/")
    data_dir = getattr(args, "data_dir", None)
    if args.debug:
        create_app(runs_dir, args.backend, data_dir).run(host=args.host, port=args.port, debug=True)
        return 0
    serve_gunicorn(runs_dir, args.backend, data_dir, args.host, args.port, max(1, args.workers))
    return 0


def run_embed(args: argparse.Namespace) -> int:
    """`workbench embed RUN`: compute (or confirm) the run's 2-D map of the test set's features."""
    import time

    from model.data import load_raw
    from model.embedding import run_embedding

    run_dir = runs.run_path(args.runs_dir, args.run)
    images = load_raw(args.data_dir, progress=False)["test_images"]
    start = time.perf_counter()
    coords, computed = run_embedding(run_dir, images)
    state = f"computed in {time.perf_counter() - start:.1f} s" if computed else "already up to date"
    print(f"run {args.run}: map of {len(coords)} test images {state} -> {run_dir / runs.EMBEDDING}")
    return 0


def run_familiarity(args: argparse.Namespace) -> int:
    """`workbench familiarity RUN`: fit and save the run's familiarity check (model/familiarity.py)."""
    from model.data import load_raw
    from model.familiarity import fit_familiarity, save_familiarity

    run_dir = runs.run_path(args.runs_dir, args.run)
    data = load_raw(args.data_dir, progress=False)
    familiarity = fit_familiarity(runs.load_model(run_dir), data["train_images"], data["train_labels"],
                                  data["test_images"])
    path = save_familiarity(run_dir, familiarity)
    print(f"run {args.run}: inputs farther than {familiarity.threshold:.1f} (squared Mahalanobis distance, "
          f"the test set's 99th percentile) are flagged unfamiliar -> {path}")
    return 0

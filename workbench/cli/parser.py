"""The `workbench` command line's arguments: one subparser per subcommand, each naming its handler
in workbench.cli.commands. Importing this module loads no TensorFlow, so `--help` answers at once.
"""

from __future__ import annotations

import argparse

from model.data import NUM_CLASSES
from model.errors import SettingError
from model.runs import DEFAULT_RUN_ID, DEFAULT_RUNS_DIR
from model.runtimes import BACKENDS
from workbench.classify import LOW_CONFIDENCE, PHOTO_RUN_ID, parse_box  # no TensorFlow at import: --help stays fast


def top_count(text: str) -> int:
    """--top: a whole number of classes, 1..10 (the API's range)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= NUM_CLASSES:
        raise argparse.ArgumentTypeError(f"must be a whole number 1..{NUM_CLASSES}, received {text!r}")
    return value


def at_least(low: int, what: str = ""):
    """An argparse type: a whole number >= low (0 epochs or a --limit of 0 is a typo, not a request)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number of at least {low}{what}, received {text!r}")
        return value
    return parse


SMALLEST_LIMIT = 100  # images: fewer cannot hold every class in both training and validation


def crop_box(text: str) -> tuple[int, int, int, int]:
    """--box: x0,y0,x1,y1 in the photo's pixels, read as the API reads its `box`."""
    try:
        return parse_box(text)
    except SettingError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="folder with the Fashion-MNIST IDX files (else $FASHION_MNIST_DIR, "
                             "else the per-user cache, downloading when missing)")


def add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", default=str(DEFAULT_RUNS_DIR), help="folder of run folders (default: runs)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """A run id (default fast-default), its runs folder and the data folder: what reading a run takes."""
    parser.add_argument("run", nargs="?", default=DEFAULT_RUN_ID, help="run id (default: fast-default)")
    add_runs_dir(parser)
    add_data_dir(parser)


def _add_data(sub) -> None:
    p = sub.add_parser("data", help="locate and verify the data; print per-class counts per split")
    add_data_dir(p)
    p.add_argument("--val-size", type=int, default=5000, help="validation images held out of train")
    p.add_argument("--seed", type=int, default=0, help="seed of the validation split")
    p.set_defaults(handler="run_data")


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model; writes runs/<run-id>/ (resumable)")
    add_data_dir(p)
    add_runs_dir(p)
    from model.recipes import RECIPES  # plain dataclasses: no TensorFlow import

    p.add_argument("--recipe", default="fast", choices=list(RECIPES),
                   help="fast (default, compact CNN), fast-long, resnet50-cpu, study (a GPU job)")
    p.add_argument("--run-id", default=None, help="run folder name (default: <recipe>-<seed>); "
                                                  "an unfinished run of that name is resumed")
    p.add_argument("--epochs", type=at_least(1), default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=at_least(1), default=None, help="override the recipe's batch size")
    p.add_argument("--learning-rate", type=float, default=None, help="override the recipe's peak learning rate")
    p.add_argument("--input-size", type=int, default=None, help="override the ResNet input size (px)")
    p.add_argument("--weights", default=None, help="ResNet50 weights: imagenet | none | PATH")
    p.add_argument("--val-size", type=int, default=None, help="validation images held out of train")
    p.add_argument("--seed", type=int, default=None, help="seed for the split, init and augmentation")
    p.add_argument("--limit", type=at_least(SMALLEST_LIMIT, " (every class in training and validation)"),
                   default=None, help="train on only this many images (smoke runs)")
    p.add_argument("--precision", default=None, choices=["auto", "float32", "mixed_bfloat16"],
                   help="training precision (default auto: mixed bfloat16 on CPUs with AMX/AVX512-BF16)")
    p.add_argument("--width", type=at_least(1), default=None, help="override the compact CNN's first-stage channels")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--local-workers", type=int, default=None, metavar="N",
                   help="data-parallel training in N >= 2 worker processes on 127.0.0.1 (each gets its "
                        "own TF_CONFIG; worker 0 writes the run folder; --batch-size is the global batch). "
                        "On several machines, set TF_CONFIG on each and run the same command instead")
    p.set_defaults(handler="run_train")


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run's model on the test set, rewriting its metrics")
    add_run_arguments(p)
    p.set_defaults(handler="run_evaluate")


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the Dash workbench and the JSON API")
    add_runs_dir(p)
    add_data_dir(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    p.add_argument("--workers", type=int, default=1, help="gunicorn worker processes (default 1)")
    p.add_argument("--backend", choices=BACKENDS, default="keras",
                   help="prediction runtime (explanations always use the Keras model)")
    p.add_argument("--debug", action="store_true", help="Dash's development server with debug mode")
    p.set_defaults(handler="run_serve")


def _add_predict(sub) -> None:
    p = sub.add_parser("predict", help="classify image files (photos are brought into the Fashion-MNIST domain)")
    p.add_argument("files", nargs="+", help="image files")
    p.add_argument("--runs-dir", default=None, help="folder of run folders (default: ./runs, else the "
                                                    "project's runs/ that holds fast-default)")
    p.add_argument("--run", default=None, help=f"run id (default: {PHOTO_RUN_ID}, the model tuned for photos, "
                                               f"when present, else {DEFAULT_RUN_ID})")
    p.add_argument("--backend", choices=BACKENDS, default="keras",
                   help="prediction runtime (default keras)")
    p.add_argument("--top", type=top_count, default=3, help="classes to show per image, 1..10 (default 3)")
    p.add_argument("--box", type=crop_box, default=None, metavar="X0,Y0,X1,Y1",
                   help="look for the garment only inside this box (photo pixels, as the API's box); "
                        "for a photo whose garment was not found or was cut")
    p.add_argument("--no-imagenet", action="store_true",
                   help="answer with the run alone, without an ImageNet classifier's view of the photo")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--low-confidence", type=float, default=None,
                   help=f"flag answers whose top probability is below this (default: "
                        f"$WORKBENCH_LOW_CONFIDENCE, else {LOW_CONFIDENCE})")
    p.set_defaults(handler="run_predict")


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export a run's model to ONNX or TFLite and check it on the test set")
    p.add_argument("run", nargs="?", default=DEFAULT_RUN_ID, help="run id (default: fast-default)")
    add_runs_dir(p)
    p.add_argument("--format", choices=["onnx", "tflite"], default="onnx",
                   help="onnx -> runs/RUN/model.onnx, tflite -> runs/RUN/model.tflite (default: onnx)")
    p.add_argument("--quantize", choices=["none", "float16", "int8"], default="none",
                   help="TFLite only: float16 weights, or int8 calibrated on training images; writes "
                        "model.<quantize>.tflite and prints the accuracy change on the test set")
    add_data_dir(p)
    p.set_defaults(handler="run_export")


def _add_import(sub) -> None:
    p = sub.add_parser("import", help="import a classifier trained elsewhere (.keras, .h5, SavedModel, .onnx) as a run")
    p.add_argument("path", help="a .keras or legacy Keras 2 .h5 full model, a TF SavedModel folder, or a .onnx file")
    p.add_argument("--run-id", required=True, help="name of the new run folder (an existing run is never replaced)")
    add_runs_dir(p)
    add_data_dir(p)
    p.add_argument("--input-scale", choices=["0-1", "0-255", "imagenet"], default=None,
                   help="pixel scale the model was trained on (default: the better of 0-1 and 0-255 on "
                        "validation images; imagenet = 0-1 then torchvision's ImageNet mean/std)")
    p.add_argument("--class-order", default=None,
                   help="the Fashion-MNIST class of each model output, comma-separated indices or names "
                        "(default: the official order 0-9)")
    p.add_argument("--trust-model-code", action="store_true",
                   help="load Keras files with safe_mode off: RUNS THE FILE'S CODE (Lambda layers, custom "
                        "objects); only for files you trust")
    p.set_defaults(handler="run_import")


def _add_label_issues(sub) -> None:
    from model.label_issues import FoldSettings  # a plain dataclass: no TensorFlow import

    p = sub.add_parser("label-issues", help="suspected label errors (K-fold + cleanlab) and train/test "
                                            "near-duplicates, cached in the run folder (resumable)")
    add_run_arguments(p)
    defaults = FoldSettings()
    p.add_argument("--folds", type=int, default=defaults.folds, help=f"K of the K-fold (default {defaults.folds})")
    p.add_argument("--epochs", type=at_least(1), default=defaults.epochs,
                   help=f"epochs per fold (default {defaults.epochs})")
    p.add_argument("--width", type=int, default=defaults.width, help=f"CNN first-stage channels (default {defaults.width})")
    p.add_argument("--limit", type=at_least(SMALLEST_LIMIT, " (every class in every fold)"), default=None,
                   help="use only this many training images (smoke runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler="run_label_issues")


def _add_embed(sub) -> None:
    p = sub.add_parser("embed", help="compute a run's embedding map (2-D UMAP of the test set's features)")
    add_run_arguments(p)
    p.set_defaults(handler="run_embed")


def _add_familiarity(sub) -> None:
    p = sub.add_parser("familiarity", help="fit a run's check for inputs unlike its training images")
    add_run_arguments(p)
    p.set_defaults(handler="run_familiarity")


SUBCOMMANDS = (_add_data, _add_train, _add_evaluate, _add_serve, _add_predict, _add_export, _add_import,
               _add_label_issues, _add_embed, _add_familiarity)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Fashion-MNIST interpretability workbench")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser

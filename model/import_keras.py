"""Imported Keras models rebuilt as the project's standard flat model.

    wrapped = wrap_keras(model, convention, final="softmax")   # input "image" (N,28,28,1) pixels 0..255
                                                               # output "predictions" (N,10)
    gradcam_layer(wrapped)                                     # the last conv output >= 4x4, or None

The user's layers are called again on new tensors (their functional graph replayed layer by layer,
nested models flattened), after standard preprocessing layers: Rescaling / Normalization for the
pixel scale, Resizing for other sizes, Concatenate for gray -> RGB, Reshape / Permute for the layout.
No Lambda is added, so the saved model.keras loads with safe_mode=True, and Grad-CAM, export and
serving treat it like a trained run.
"""

from __future__ import annotations

import numpy as np

from model.data import IMAGE_SIZE, NUM_CLASSES
from model.import_formats import InputConvention
from model.import_onnx import GRAY_MEAN, GRAY_STD, IMAGENET_MEAN, IMAGENET_STD, INPUT_NAME, OUTPUT_NAME

MIN_GRADCAM_MAP = 4  # the Grad-CAM layer's map must be at least 4x4 to say where in the image
CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
CONV_MAP_TYPES = CONV_TYPES + ("Add", "Concatenate", "Activation", "ReLU", "LeakyReLU", "BatchNormalization")
# ^ layers whose output is still a convolution's map (a ResNet block ends in Add); pooling is not


def preprocess(x, conv: InputConvention):
    """Layers taking (N,28,28,1) pixels 0..255 to the input the user's model expects."""
    from keras import layers

    if conv.scale in ("0-1", "imagenet"):
        x = layers.Rescaling(1 / 255, name="wb_scale")(x)
    if (conv.height, conv.width) != (IMAGE_SIZE, IMAGE_SIZE):
        x = layers.Resizing(conv.height, conv.width, name="wb_resize")(x)
    if conv.channels == 3:
        x = layers.Concatenate(name="wb_gray_to_rgb")([x, x, x])
    if conv.scale == "imagenet":
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if conv.channels == 3 else ((GRAY_MEAN,), (GRAY_STD,))
        x = layers.Normalization(mean=list(mean), variance=[s * s for s in std], name="wb_imagenet")(x)
    if conv.layout == "chw":
        return layers.Permute((3, 1, 2), name="wb_channels_first")(x)
    if conv.layout == "hw":
        return layers.Reshape((IMAGE_SIZE, IMAGE_SIZE), name="wb_drop_channel")(x)
    if conv.layout == "flat":
        return layers.Reshape((IMAGE_SIZE * IMAGE_SIZE,), name="wb_flatten")(x)
    return x


def call_flat(model, x):
    """The model's layers called on x one by one (nested models flattened): new nodes, same weights."""
    import keras

    if isinstance(model, keras.Sequential):
        for layer in model.layers:
            x = call_flat(layer, x) if isinstance(layer, keras.Model) else layer(x)
        return x
    if isinstance(model, keras.Model) and hasattr(model, "_run_through_graph"):
        def operation(op):
            return (lambda *args, **kwargs: call_flat(op, args[0])) if isinstance(op, keras.Model) else op

        outputs = model._run_through_graph([x], operation_fn=operation)
        return outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    raise TypeError(f"cannot rebuild {type(model).__name__}: a subclassed model has no layer graph")


def ends_in_softmax(model) -> bool:
    """Whether the last layer applies softmax through its `activation` (Dense(..., activation="softmax"))."""
    import keras

    activation = getattr(model.layers[-1], "activation", None)
    return activation is keras.activations.softmax or getattr(activation, "__name__", "") == "softmax"


def wrap_keras(model, conv: InputConvention, final: str | None, class_order: list[int] | None = None):
    """The standard flat model around `model`. final: "softmax" adds a softmax named predictions,
    "linear" only names the output, None returns the raw output (to probe a scale)."""
    import keras
    from keras import layers

    free_reserved_names(model)
    image = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name=INPUT_NAME, dtype="float32")
    y = call_flat(model, preprocess(image, conv))
    if class_order is not None:
        order = layers.Dense(NUM_CLASSES, use_bias=False, trainable=False, name="wb_class_order")
        y = order(y)
        order.set_weights([permutation_matrix(class_order)])
    if final is not None:
        y = layers.Activation(final, name=OUTPUT_NAME)(y)
    return keras.Model(image, y, name=f"imported_{model.name}")


def free_reserved_names(model) -> None:
    """Rename the model's layers that carry a name the wrapper gives its own layers ("image",
    "predictions", "wb_..."): a model trained with this workbench ends in a layer named
    "predictions", and Keras refuses two layers of one name in a model."""
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    taken = {layer.name for layer in layers}
    for layer in layers:
        if layer.name in (INPUT_NAME, OUTPUT_NAME) or layer.name.startswith("wb_"):
            name = f"user_{layer.name}"
            while name in taken:
                name += "_"
            taken.add(name)
            layer.name = name


def permutation_matrix(class_order: list[int]) -> np.ndarray:
    """P with (outputs @ P)[:, c] = outputs[:, j] where model output j is Fashion-MNIST class c."""
    matrix = np.zeros((NUM_CLASSES, NUM_CLASSES), np.float32)
    for j, c in enumerate(class_order):
        matrix[j, c] = 1.0
    return matrix


def move_softmax_out(model) -> None:
    """Make the last layer linear (its softmax is re-added as the `predictions` layer), so
    explanations see the logits, as with a trained run."""
    import keras

    model.layers[-1].activation = keras.activations.linear


def gradcam_layer(model) -> str | None:
    """The last convolution output (a conv layer, or an Add / activation / batch norm after one)
    with an (N, H, W, C) map of at least 4x4; None when there is none (an MLP)."""
    seen_conv, chosen = False, None
    for layer in model.layers:
        kind = type(layer).__name__
        seen_conv = seen_conv or kind in CONV_TYPES
        shape = getattr(getattr(layer, "output", None), "shape", None)
        spatial = shape is not None and len(shape) == 4 and min(shape[1] or 0, shape[2] or 0) >= MIN_GRADCAM_MAP
        if seen_conv and kind in CONV_MAP_TYPES and spatial:
            chosen = layer.name
    return chosen

"""Model architectures: flat functional Keras models with standard layer names.

Every model follows the project's model contract:
  input  "image"        (None, 28, 28, 1) float32, raw pixels 0..255, garment bright on black
  output "predictions"  (None, 10) softmax
and does its own normalisation and resizing inside with built-in layers (no Lambda), so a saved
`model.keras` loads with `safe_mode=True` and needs nothing but Keras.

    model = build_compact_cnn()                       # the `fast` CPU model, ~0.3 M parameters
    model = build_resnet50_classifier(input_size=64)  # the study's classifier at a CPU-friendly size

Grad-CAM targets (`GRADCAM_LAYERS`): the last block output whose feature map is still >= 7x7.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers

from model.data import CLASS_NAMES, IMAGE_SIZE

INPUT_NAME = "image"
OUTPUT_NAME = "predictions"
NUM_CLASSES = len(CLASS_NAMES)

# Fashion-MNIST training-set pixel statistics (on the 0..1 scale), used to centre the inputs.
PIXEL_MEAN = 0.2860
PIXEL_STD = 0.3530

# ImageNet 'caffe' preprocessing (what ResNet50's weights expect): BGR order, per-channel mean
# subtracted, no scaling. A grayscale image stacked to 3 channels is the same in RGB and BGR.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

GRADCAM_LAYERS = {"compact_cnn": "conv3_block1_out"}  # 7x7x(4w): the compact CNN's last block


def image_input() -> keras.KerasTensor:
    return keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE, 1), dtype="float32", name=INPUT_NAME)


# ---------------------------------------------------------------------------------------------
# Batch norm for training: the same layer, its training step in one fused kernel

class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' BatchNormalization whose training step runs TensorFlow's fused kernel (FusedBatchNormV3).

    Same variables, same normalisation (biased batch variance), same moving-average update and the
    same inference path as the plain layer. Keras builds the training step from ~8 separate passes
    over the activations (cast, mean, square, variance, scale, shift and their gradients); the fused
    kernel makes two each way. The compact CNN trained ~1.2x faster with it on 2 cores (synthetic
    batches, median step: w24 2,750 -> 3,300 img/s). Only training models use it: the model that is
    saved is rebuilt with the plain layer (model.train.save_best_model), so model.keras needs
    nothing but Keras.
    """

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable) or mask is not None or self.axis not in (-1, len(inputs.shape) - 1):
            return super().call(inputs, training=training, mask=mask)
        # float32 like the plain layer (bf16 inputs are upcast; oneDNN's bf16 gradient kernel was slower)
        x = tf.cast(inputs, tf.float32)
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones(x.shape[-1:], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros(x.shape[-1:], tf.float32)
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, gamma, beta, epsilon=self.epsilon,
                                                             is_training=True)
        n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
        variance = variance * (n - 1.0) / tf.maximum(n, 2.0)  # the kernel reports Bessel-corrected variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


# ---------------------------------------------------------------------------------------------
# The compact CNN (recipe `fast`)

def conv_bn_relu(x, filters: int, name: str, norm=layers.BatchNormalization):
    """3x3 convolution -> batch norm -> ReLU, the unit every block is made of.

    No kernel regularizer: weight decay is the optimizer's (`Recipe.weight_decay`), one place for it.
    """
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv",
                      kernel_initializer="he_normal")(x)
    x = norm(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def residual_block(x, filters: int, name: str, norm=layers.BatchNormalization):
    """Two conv-bn-relu units with an identity shortcut (ResNet v1 'basic block', ReLU after the add)."""
    shortcut = x
    y = conv_bn_relu(x, filters, f"{name}_1", norm)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_2_conv",
                      kernel_initializer="he_normal")(y)
    y = norm(momentum=0.9, gamma_initializer="zeros", name=f"{name}_2_bn")(y)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.ReLU(name=f"{name}_out")(y)


def downsample_stage(x, filters: int, name: str, norm=layers.BatchNormalization):
    """Halve the resolution with max pooling, widen with a conv, then one residual block."""
    x = layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    x = conv_bn_relu(x, filters, f"{name}_down", norm)
    return residual_block(x, filters, f"{name}_block1", norm)


def build_compact_cnn(width: int = 24, fused_batch_norm: bool = False) -> keras.Model:
    """ResNet-9-style CNN at the native 28x28: 28 -> 14 -> 7, residual blocks, GAP, softmax.

    Feature maps: stem 28x28xw, conv2 14x14x2w, conv3 7x7x4w (the Grad-CAM target).
    fused_batch_norm=True builds the training copy (FusedBatchNormalization: same weights, faster steps).
    """
    norm = FusedBatchNormalization if fused_batch_norm else layers.BatchNormalization
    inputs = image_input()
    # Normalise inside the model: (pixels / 255 - mean) / std.
    x = layers.Rescaling(1.0 / (255.0 * PIXEL_STD), offset=-PIXEL_MEAN / PIXEL_STD, name="normalize")(inputs)
    x = conv_bn_relu(x, width, "conv1", norm)
    x = downsample_stage(x, 2 * width, "conv2", norm)
    x = downsample_stage(x, 4 * width, "conv3", norm)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    # float32 softmax even when the body computes in bfloat16 (mixed precision training).
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="compact_cnn")


# ---------------------------------------------------------------------------------------------
# The study's ResNet50 classifier (recipes `study`, `resnet50-cpu`)

def resnet50_preprocessing(inputs, input_size: int):
    """Resize, stack grayscale to 3 channels and apply ImageNet 'caffe' preprocessing, all built-in layers."""
    x = inputs
    if input_size != IMAGE_SIZE:
        x = layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(x)
    # One Rescaling per channel subtracts that channel's ImageNet mean; Concatenate stacks them (B, G, R).
    channels = [layers.Rescaling(1.0, offset=-mean, name=f"caffe_{c}")(x)
                for c, mean in zip("bgr", CAFFE_MEAN_BGR)]
    return layers.Concatenate(axis=-1, name="gray_to_bgr")(channels)


def build_resnet50_classifier(input_size: int = 224, trainable_layers: int | None = None,
                              dense_units: tuple[int, int] = (256, 128)) -> keras.Model:
    """ResNet50 base (no top, random init) + GAP -> Dense 256 -> Dense 128 -> Dense 10 softmax.

    Built flat on `base.output` so every base layer is a layer of the returned model (Grad-CAM can
    reach any of them). `trainable_layers=N` freezes all base layers but the last N (None: all
    trainable). Pretrained weights are loaded afterwards by `model.weights.load_resnet50_weights`.
    """
    if input_size < 32:
        raise ValueError(f"ResNet50 needs an input size of at least 32 px; received input_size={input_size}")
    inputs = image_input()
    x = resnet50_preprocessing(inputs, input_size)
    base = keras.applications.ResNet50(include_top=False, weights=None, input_tensor=x)
    if trainable_layers is not None:
        set_trainable_tail(base_layers(base), trainable_layers)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    x = layers.Dense(dense_units[0], activation="relu", name="fc1")(x)
    x = layers.Dense(dense_units[1], activation="relu", name="fc2")(x)
    # float32 softmax even when the body computes in bfloat16 (mixed precision training).
    outputs = layers.Dense(NUM_CLASSES, activation="softmax", dtype="float32", name=OUTPUT_NAME)(x)
    return keras.Model(inputs, outputs, name="resnet50_classifier")


def base_layers(base: keras.Model) -> list:
    """The ResNet50 layers proper (from `conv1_pad`), without our preprocessing layers in front."""
    names = [layer.name for layer in base.layers]
    return base.layers[names.index("conv1_pad"):]


def set_trainable_tail(layer_list: list, n: int) -> None:
    """Freeze every layer except the last n (the study unfroze the last 10 base layers)."""
    if n < 0:
        raise ValueError(f"trainable_layers must be >= 0; received {n}")
    for i, layer in enumerate(layer_list):
        layer.trainable = i >= len(layer_list) - n


def resnet50_gradcam_layer(input_size: int) -> str:
    """The deepest ResNet50 block output whose feature map is still >= 7x7 (stride 4, 8, 16, 32)."""
    for stage, stride, last_block in ((5, 32, 3), (4, 16, 6), (3, 8, 4), (2, 4, 3)):
        if input_size // stride >= 7:
            return f"conv{stage}_block{last_block}_out"
    return "conv2_block3_out"


# ---------------------------------------------------------------------------------------------

def build_model(architecture: str, **kwargs) -> keras.Model:
    """Build a model by architecture name ("compact_cnn" or "resnet50")."""
    builders = {"compact_cnn": build_compact_cnn, "resnet50": build_resnet50_classifier}
    if architecture not in builders:
        raise ValueError(f"unknown architecture {architecture!r}; expected one of {sorted(builders)}")
    return builders[architecture](**kwargs)


def gradcam_layer(architecture: str, input_size: int = IMAGE_SIZE) -> str:
    if architecture == "resnet50":
        return resnet50_gradcam_layer(input_size)
    return GRADCAM_LAYERS[architecture]

"""Imported ONNX models (and TF SavedModels, converted to ONNX): wrapped into the standard input and output.

    proto = read_onnx(path)                                  # ImportModelError when not a readable ONNX model
    shape_in, shape_out = onnx_shapes(proto)
    wrapped = wrap_onnx(proto, convention, logits=True)      # input "image" (N,28,28,1) pixels 0..255,
                                                             # output "predictions" (N,10) probabilities
    proto = saved_model_to_onnx(folder)                      # tf2onnx; the SavedModel's graph only

There is no Keras graph to rebuild, so the preprocessing (scale, resize, gray -> RGB, layout, flatten)
and the softmax are ONNX nodes put before and after the user's graph; the result runs in ONNX Runtime
like any exported run (model.runtimes.OnnxPredictor). Nothing from the file runs in Python.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.data import IMAGE_SIZE, NUM_CLASSES
from model.errors import ImportModelError
from model.import_formats import InputConvention

INPUT_NAME = "image"          # the project's model input ...
OUTPUT_NAME = "predictions"   # ... and output
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet normalisation of 0..1 pixels
IMAGENET_STD = (0.229, 0.224, 0.225)
GRAY_MEAN, GRAY_STD = 0.449, 0.226     # their channel averages, for one-channel "imagenet" inputs
MIN_RESIZE_OPSET = 11                  # Resize with scales as an input exists from opset 11


def read_onnx(path: Path):
    """The ONNX model in a file, checked; ImportModelError when it is not one."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)  # never read other files named by the model
    except Exception as exc:  # DecodeError ... for a damaged or foreign file
        raise _corrupt(path, exc) from exc
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise ImportModelError(f"{Path(path).name} keeps its weights in separate files (ONNX external data); "
                               "save the model as one .onnx file", "unsupported_model")
    try:
        onnx.checker.check_model(proto)
    except Exception as exc:  # ValidationError for a graph that is not valid ONNX
        raise _corrupt(path, exc) from exc
    return proto


def _corrupt(path: Path, exc: Exception) -> ImportModelError:
    return ImportModelError(f"{Path(path).name} is not a readable ONNX model: the file is corrupt "
                            f"({type(exc).__name__}: {str(exc)[:200]})", "corrupt_model")


def _graph_inputs(graph) -> list:
    initializers = {t.name for t in graph.initializer}
    return [i for i in graph.input if i.name not in initializers]


def _dims(value_info) -> list:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def onnx_shapes(proto, name: str) -> tuple[list, list]:
    """The model's one input and one output shape (None for a free dimension)."""
    inputs, outputs = _graph_inputs(proto.graph), list(proto.graph.output)
    if len(inputs) != 1 or len(outputs) != 1:
        raise ImportModelError(f"{name} has {len(inputs)} inputs and {len(outputs)} outputs; an image "
                               "classifier has one of each", "wrong_outputs")
    return _dims(inputs[0]), _dims(outputs[0])


def _opset(proto) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _const(graph, name: str, values, dtype=np.float32) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
    return name


def _preprocess_nodes(graph, conv: InputConvention, opset: int, target: str) -> list:
    """Nodes from "image" (N,28,28,1) 0..255 to the model's input `target`."""
    from onnx import helper

    nodes = [helper.make_node("Transpose", [INPUT_NAME], ["wb_nchw"], perm=[0, 3, 1, 2])]
    x = "wb_nchw"
    if conv.scale in ("0-1", "imagenet"):
        nodes.append(helper.make_node("Mul", [x, _const(graph, "wb_inv255", 1 / 255)], ["wb_scaled"]))
        x = "wb_scaled"
    if (conv.height, conv.width) != (IMAGE_SIZE, IMAGE_SIZE):
        if opset < MIN_RESIZE_OPSET:
            raise ImportModelError(f"the model takes {conv.height}x{conv.width} images and uses ONNX opset "
                                   f"{opset}; resizing needs opset {MIN_RESIZE_OPSET} or later", "bad_input_shape")
        scales = [1, 1, conv.height / IMAGE_SIZE, conv.width / IMAGE_SIZE]
        nodes.append(helper.make_node("Resize", [x, "", _const(graph, "wb_scales", scales)], ["wb_resized"],
                                      mode="linear"))
        x = "wb_resized"
    if conv.channels == 3:
        nodes.append(helper.make_node("Concat", [x, x, x], ["wb_rgb"], axis=1))
        x = "wb_rgb"
    if conv.scale == "imagenet":
        mean, std = (IMAGENET_MEAN, IMAGENET_STD) if conv.channels == 3 else ((GRAY_MEAN,), (GRAY_STD,))
        nodes.append(helper.make_node("Sub", [x, _const(graph, "wb_mean", np.reshape(mean, (1, -1, 1, 1)))],
                                      ["wb_centred"]))
        nodes.append(helper.make_node("Div", ["wb_centred", _const(graph, "wb_std", np.reshape(std, (1, -1, 1, 1)))],
                                      ["wb_normalised"]))
        x = "wb_normalised"
    nodes.append(_layout_node(graph, conv, x, target))
    return nodes


def _layout_node(graph, conv: InputConvention, x: str, target: str):
    from onnx import helper

    if conv.layout == "chw":
        return helper.make_node("Identity", [x], [target])
    if conv.layout == "hwc":
        return helper.make_node("Transpose", [x], [target], perm=[0, 2, 3, 1])
    shape = [-1, IMAGE_SIZE, IMAGE_SIZE] if conv.layout == "hw" else [-1, IMAGE_SIZE * IMAGE_SIZE]
    return helper.make_node("Reshape", [x, _const(graph, "wb_shape", shape, np.int64)], [target])


def wrap_onnx(proto, conv: InputConvention, logits: bool, class_order: list[int] | None = None):
    """A copy of `proto` taking "image" (N,28,28,1) pixels 0..255 and giving "predictions" (N,10)
    probabilities: preprocessing nodes before the graph, class reordering and a softmax after it."""
    import onnx
    from onnx import TensorProto, helper

    wrapped = onnx.ModelProto()
    wrapped.CopyFrom(proto)
    graph = wrapped.graph
    original_in = _graph_inputs(graph)[0].name
    original_out = graph.output[0].name
    pre = _preprocess_nodes(graph, conv, _opset(proto), original_in)
    post, y = [], original_out
    if class_order is not None:
        post.append(helper.make_node("Gather", [y, _const(graph, "wb_order", _inverse(class_order), np.int64)],
                                     ["wb_ordered"], axis=1))
        y = "wb_ordered"
    post.append(helper.make_node("Softmax" if logits else "Identity", [y], [OUTPUT_NAME], **(
        {"axis": 1} if logits else {})))
    nodes = pre + list(graph.node) + post
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # shapes inside may name a fixed batch of 1; ONNX Runtime infers them again
    keep = [i for i in graph.input if i.name != original_in]
    del graph.input[:]
    graph.input.extend([helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", IMAGE_SIZE, IMAGE_SIZE, 1]),
                        *keep])
    del graph.output[:]
    graph.output.extend([helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", NUM_CLASSES])])
    return wrapped


def _inverse(class_order: list[int]) -> list[int]:
    """Gather indices: output column c (a Fashion-MNIST class) comes from model output class_order.index(c)."""
    return [class_order.index(c) for c in range(NUM_CLASSES)]


def onnx_session(proto, name: str):
    """An ONNX Runtime session of an in-memory model; ImportModelError when the runtime refuses it."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's Fail / InvalidGraph / NotImplemented
        raise ImportModelError(f"ONNX Runtime cannot run {name} after wrapping it ({type(exc).__name__}: "
                               f"{str(exc)[:300]})", "unsupported_model") from exc


def saved_model_to_onnx(folder: Path):
    """A TF SavedModel's serving signature as an ONNX model (tf2onnx); the graph only, no Python."""
    import tensorflow as tf
    import tf2onnx

    try:
        loaded = tf.saved_model.load(str(folder))
        signature = loaded.signatures["serving_default"]
        (key, spec), = signature.structured_input_signature[1].items()
    except Exception as exc:  # a damaged folder, no serving signature, several inputs
        raise ImportModelError(f"{folder.name} is not a usable SavedModel: it needs a serving_default "
                               f"signature with one input ({type(exc).__name__}: {str(exc)[:200]})",
                               "corrupt_model") from exc

    @tf.function(input_signature=[tf.TensorSpec(spec.shape, tf.float32, name="input")])
    def serve(x):
        outputs = signature(**{key: tf.cast(x, spec.dtype)})
        return tf.identity(next(iter(outputs.values())), name="output")

    try:
        proto, _ = tf2onnx.convert.from_function(serve, input_signature=serve.input_signature, opset=13)
    except Exception as exc:  # an op tf2onnx cannot convert
        raise ImportModelError(f"{folder.name} could not be converted to ONNX ({type(exc).__name__}: "
                               f"{str(exc)[:200]})", "unsupported_model") from exc
    return proto

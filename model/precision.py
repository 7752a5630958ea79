"""Training precision: mixed bfloat16 where the CPU multiplies bf16 in hardware, float32 elsewhere.

    resolve_precision("auto")          # "mixed_bfloat16" on an AMX / AVX512-BF16 CPU without a GPU
    with dtype_policy("mixed_bfloat16"):
        model = build_compact_cnn()    # bf16 compute, float32 variables

Measured: the compact CNN trains 1.5-1.7x faster in mixed bfloat16 than in float32 on an Intel AMX
VM, 1.15x on an AMD EPYC with AVX512-BF16. Saved models are always float32 (model.train.save_best_model).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import tensorflow as tf

PRECISIONS = ("float32", "mixed_bfloat16")
BF16_CPU_FLAGS = {"amx_bf16", "avx512_bf16"}  # Intel AMX / AVX512-BF16: oneDNN runs bf16 convs natively


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """True if the CPU (Linux /proc/cpuinfo flags) has bf16 matrix instructions."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = {flag for line in cpuinfo.splitlines() if line.startswith("flags") for flag in line.split()}
    return bool(flags & BF16_CPU_FLAGS)


def resolve_precision(precision: str) -> str:
    """"auto" -> mixed_bfloat16 on a bf16-capable CPU without a GPU, else float32; others are checked."""
    if precision == "auto":
        gpu = bool(tf.config.list_physical_devices("GPU"))
        return "mixed_bfloat16" if cpu_has_bf16() and not gpu else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected auto or one of {list(PRECISIONS)}")
    return precision


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build models under Keras' global dtype policy `name`, restoring the previous one afterwards."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)

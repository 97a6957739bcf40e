"""Where and in what precision a run computes: device and precision scopes, the memory check.

Machines of one kind differ in CPU here (some have AMX-BF16 or AVX512-BF16, some only AVX2),
so the choice of precision is made from the CPU's flags (`/proc/cpuinfo`), never assumed,
and every run says what it used (`describe_hardware`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from typing import FrozenSet

from nst_keras.errors import OutOfMemoryError

#: The CPU flags that decide (or explain) the speed of bfloat16 and float32 convolutions.
RELEVANT_CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")

#: Flags with which oneDNN runs bfloat16 convolutions natively. Measured here on a CPU with
#: AVX512-BF16 and no AMX: VGG19's forward + input gradient at 400x533 takes 0.51x the float32
#: time, and the saved image's loss is within 3% of float32's at the same budget (see the
#: README's benchmark section). Without either flag bfloat16 is emulated and slower.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.lru_cache(maxsize=1)
def cpu_info() -> tuple:
    """(model name, frozenset of the relevant flags) of this machine's CPU, from /proc/cpuinfo.

    Unknown values (no /proc, another OS) give ("unknown CPU", frozenset()).
    """
    name, flags = "unknown CPU", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and name == "unknown CPU":
                    name = " ".join(value.split())
                elif key == "flags" and not flags:
                    flags = frozenset(value.split()) & frozenset(RELEVANT_CPU_FLAGS)
    except OSError:
        pass
    return name, flags


def cpu_flags() -> FrozenSet[str]:
    """The relevant flags (`RELEVANT_CPU_FLAGS`) this CPU has."""
    return cpu_info()[1]


def gpu_names() -> list:
    """The names of the GPUs TensorFlow sees (empty on a CPU-only machine)."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return names


def resolve_device(device: str) -> str:
    """`"cpu"` or `"gpu"`: what `device` (`"auto"`, `"cpu"` or `"gpu"`) means on this machine.

    Raises:
        ValueError: If `"gpu"` is asked for and TensorFlow sees none.
    """
    if device == "cpu":
        return "cpu"
    visible = bool(gpu_names())
    if device == "gpu" and not visible:
        raise ValueError(
            "no GPU is visible to TensorFlow on this machine; use --device cpu or auto. "
            "Received: device='gpu'"
        )
    return "gpu" if visible else "cpu"


def resolve_precision(precision: str, device: str) -> str:
    """`"float32"` or `"bfloat16"`: what `precision` means on `device` (`"cpu"` or `"gpu"`).

    `"auto"` is bfloat16 on a CPU with AMX-BF16 or AVX512-BF16 and float32 elsewhere. On a
    GPU it is float32: bfloat16 has not been measured on a GPU with TensorFlow here.
    """
    if precision != "auto":
        return precision
    if device == "cpu" and cpu_flags() & frozenset(BF16_CPU_FLAGS):
        return "bfloat16"
    return "float32"


def describe_hardware(device: str) -> str:
    """One line naming the hardware a run uses: the GPU's name, or the CPU and its flags."""
    if device == "gpu":
        names = gpu_names()
        return f"GPU {names[0] if names else 'unknown'}"
    name, flags = cpu_info()
    shown = " ".join(f for f in RELEVANT_CPU_FLAGS if f in flags) or "none of " + "/".join(
        RELEVANT_CPU_FLAGS
    )
    return f"CPU {name} ({os.cpu_count()} cores; {shown})"


def device_scope(device: str):
    """A `tf.device` scope for `"cpu"` or `"gpu"` (resolved names, see `resolve_device`)."""
    import tensorflow as tf

    return tf.device("/GPU:0" if device == "gpu" else "/CPU:0")


@contextlib.contextmanager
def precision_scope(precision: str):
    """Builds Keras layers in `precision` inside the scope, and restores the policy after.

    `"bfloat16"` sets Keras' global `mixed_bfloat16` policy: layers built inside compute in
    bfloat16 and keep float32 weights. Keras' VGG constructors take no `dtype`, so the global
    policy is the only way in; restoring it keeps it from leaking into models a user builds
    afterwards.
    """
    import keras

    previous = keras.config.dtype_policy()
    if precision == "bfloat16":
        keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


#: Address space TensorFlow takes before any image (measured: ~2.2 GB of VmSize on TF 2.21).
_TF_ADDRESS_SPACE = 2.5 * 2**30


def available_memory_bytes() -> tuple:
    """(MemAvailable, address-space headroom under RLIMIT_AS), each None where unknown."""
    import resource

    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    headroom = None if soft == resource.RLIM_INFINITY else soft - _TF_ADDRESS_SPACE
    return available, headroom


def check_memory(image_hw, layers, model: str, device: str) -> None:
    """Refuses, before any work, an image size whose evaluation cannot fit in memory.

    On the CPU, TensorFlow does not always fail cleanly when an allocation fails (it can
    crash the process), so the size is checked against an estimate first: the activations
    of one evaluation (`features.estimate_memory_bytes`) against MemAvailable, and, under an
    address-space limit (`ulimit -v`), against that limit. Skipped on a GPU, where TensorFlow
    raises `ResourceExhaustedError` instead. The float32 estimate is used in both precisions:
    bfloat16 keeps float32 copies of the layers' outputs for the losses.

    Args:
        image_hw: (H, W) of the generated image.
        layers: The layers used.
        model: `"vgg19"` or `"vgg16"`.
        device: `"cpu"` or `"gpu"` (resolved).

    Raises:
        OutOfMemoryError: With the size tried, the estimate and a height that would fit.
    """
    from nst_keras.features import estimate_memory_bytes

    if device == "gpu":
        return
    height, width = image_hw
    need = estimate_memory_bytes(height, width, layers, model)
    available, headroom = available_memory_bytes()
    # Address space grows ~1.5x faster than resident memory (allocator arenas, threads).
    limits = [a for a in (available, None if headroom is None else headroom / 1.5) if a]
    if limits and need > min(limits):
        fits = int(height * (min(limits) / need) ** 0.5 * 0.9)
        raise OutOfMemoryError(
            f"out of memory: {width}x{height} needs about {need / 2**30:.1f} GiB for one "
            f"evaluation and about {max(0, min(limits)) / 2**30:.1f} GiB is available; try "
            f"--height {max(1, fits)} or less"
        )

"""nst_keras: Gatys et al.'s neural style transfer in Keras, as Chollet's book teaches it.

>>> from nst_keras import stylize
>>> image = stylize("tubingen.jpg", "starry_night.jpg")   # RGB uint8 array

The public names are imported lazily, so `import nst_keras` (and `--help`) does not load
TensorFlow.
"""

__version__ = "0.2.0"

_EXPORTS = {
    "stylize": "nst_keras.run",
    "transfer_style": "nst_keras.run",
    "Result": "nst_keras.render",
    "Job": "nst_keras.plan",
    "run_batch": "nst_keras.batch",
    "Progress": "nst_keras.solvers",
    "StyleTransferError": "nst_keras.errors",
    "NonFiniteLossError": "nst_keras.errors",
    "Interrupted": "nst_keras.errors",
    "OutOfMemoryError": "nst_keras.errors",
    "DivergedError": "nst_keras.errors",
    "StyleConfig": "nst_keras.config",
    "content_loss": "nst_keras.losses",
    "gram_matrix": "nst_keras.losses",
    "style_loss": "nst_keras.losses",
    "total_variation_loss": "nst_keras.losses",
    "build_feature_model": "nst_keras.features",
    "load_image": "nst_keras.images",
    "save_image": "nst_keras.images",
    "preprocess": "nst_keras.images",
    "deprocess": "nst_keras.images",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nst_keras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

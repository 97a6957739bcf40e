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
    "run_batch": "nst_keras.commands.batch",
    "train_network": "nst_keras.run",
    "stylize_with": "nst_keras.run",
    "TrainConfig": "nst_keras.engine.training",
    "load_network": "nst_keras.engine.transformer",
    "Progress": "nst_keras.engine.solvers",
    "StyleTransferError": "nst_keras.errors",
    "NonFiniteLossError": "nst_keras.errors",
    "Interrupted": "nst_keras.errors",
    "OutOfMemoryError": "nst_keras.errors",
    "DivergedError": "nst_keras.errors",
    "StyleConfig": "nst_keras.config",
    "content_loss": "nst_keras.engine.losses",
    "gram_matrix": "nst_keras.engine.losses",
    "style_loss": "nst_keras.engine.losses",
    "total_variation_loss": "nst_keras.engine.losses",
    "build_feature_model": "nst_keras.engine.features",
    "load_image": "nst_keras.media.images",
    "save_image": "nst_keras.media.images",
    "preprocess": "nst_keras.media.images",
    "deprocess": "nst_keras.media.images",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nst_keras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)

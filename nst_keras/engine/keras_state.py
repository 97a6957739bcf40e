"""The state of a gradient method (Keras' Adam or SGD) as plain arrays, to resume exactly.

What a step of `solvers.gradient_descent` depends on: the current image (not the best one),
and the optimiser: its configuration (the learning rate SGD chose from its first gradient,
the decay schedule), and its variables by name (the step counter that drives the schedule
and Adam's bias correction, Adam's first and second moments). Saved at an evaluation
boundary and restored into a fresh optimiser, the next steps are bit for bit the same.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Dict, Mapping

import numpy as np


@dataclasses.dataclass(frozen=True)
class KerasState:
    """A gradient method's state at an evaluation boundary (before the next step's evaluation).

    Attributes:
        x: The current image, preprocessed (1, H, W, 3) float32: the next point evaluated.
        config: The optimiser, `keras.optimizers.serialize`d as JSON; empty before it
            exists (SGD's is made from the first gradient).
        variables: The optimiser's variables by name (`iteration`, `learning_rate`,
            `<image>_momentum`, `<image>_velocity`); empty before its first step.
    """

    x: np.ndarray
    config: str = ""
    variables: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """The bytes its arrays hold."""
        return self.x.nbytes + sum(v.nbytes for v in self.variables.values())

    def to_arrays(self) -> Dict[str, np.ndarray]:
        """The state as named numpy arrays (for `np.savez`; no pickling needed)."""
        arrays = {"x": self.x, "config": np.array(self.config)}
        arrays.update({f"var/{name}": value for name, value in self.variables.items()})
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> "KerasState":
        """The state from `to_arrays`' arrays.

        Raises:
            ValueError: If `x` or `config` is missing.
        """
        if "x" not in arrays or "config" not in arrays:
            raise ValueError(f"a Keras optimiser state needs x and config. Received: "
                             f"{sorted(arrays)}")
        variables = {k[len("var/"):]: np.asarray(v) for k, v in arrays.items()
                     if k.startswith("var/")}
        return cls(x=np.asarray(arrays["x"]), config=str(np.asarray(arrays["config"])),
                   variables=variables)


def capture(optimizer, x) -> KerasState:
    """The state of `optimizer` stepping the variable `x`.

    Args:
        optimizer: A Keras optimiser, or anything else (a callable that makes one from the
            first gradient) when there is none yet.
        x: The image's `tf.Variable` (or an array).
    """
    import keras

    x = np.array(x.numpy() if hasattr(x, "numpy") else x, np.float32)
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return KerasState(x=x)
    config = json.dumps(keras.optimizers.serialize(optimizer))
    variables = {v.name: np.array(v.numpy()) for v in optimizer.variables}
    if len(variables) != len(optimizer.variables):
        raise ValueError("the optimiser's variables must have distinct names. Received: "
                         f"{[v.name for v in optimizer.variables]}")
    return KerasState(x=x, config=config, variables=variables)


def restore(state: KerasState, x, optimizer=None):
    """The optimiser of `state`, built for the variable `x`, its variables restored by name.

    Args:
        state: From `capture`.
        x: The image's `tf.Variable`; `state.x` is assigned to it.
        optimizer: What to return when the state has no optimiser yet (the caller's
            optimiser or its factory).

    Returns:
        The optimiser to go on with.

    Raises:
        ValueError: If the restored optimiser's variables do not match the state's.
    """
    import keras

    x.assign(np.asarray(state.x, np.float32))
    if not state.config:
        return optimizer
    restored = keras.optimizers.deserialize(json.loads(state.config))
    if not state.variables:
        return restored
    restored.build([x])
    names = {v.name: v for v in restored.variables}
    if set(names) != set(state.variables):
        raise ValueError(f"the optimiser's variables {sorted(names)} do not match the saved "
                         f"ones. Received: {sorted(state.variables)}")
    for name, value in state.variables.items():
        names[name].assign(value)
    return restored


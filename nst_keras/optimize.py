"""Deprecated: the names this module held, re-exported for one release.

The engine now lives in one module per job: `objective` (terms, targets, the traced
function), `solvers` (the monitor and L-BFGS-B), `plan` (every check, the job), `render`
(`build_problem`, `solve`, `render`), `run` (`transfer_style`, `stylize`), `errors` and
`runtime`. Import from those, or from `nst_keras`. Gone with the old layout: `minimize`,
`make_loss_and_grad`, `compute_targets` (now `objective.compute_targets`, with named
terms), `check_memory` (now the plan's memory check) and `device_scope` (now in `runtime`).
"""

import warnings

warnings.warn(
    "nst_keras.optimize is deprecated: import from nst_keras, nst_keras.run, "
    "nst_keras.objective or nst_keras.features instead",
    DeprecationWarning,
    stacklevel=2,
)

from nst_keras.errors import (  # noqa: E402,F401
    Interrupted,
    NonFiniteLossError,
    OutOfMemoryError,
    StyleTransferError,
)
from nst_keras.engine.features import features_of  # noqa: E402,F401
from nst_keras.run import (  # noqa: E402,F401
    Problem,
    Result,
    build_problem,
    initial_image,
    solve,
    stylize,
    transfer_style,
)
from nst_keras.engine.solvers import Progress  # noqa: E402,F401

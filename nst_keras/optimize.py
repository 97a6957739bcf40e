"""Deprecated: the names this module held, re-exported for one release.

The engine now lives in one module per job: `objective` (terms, targets, the traced
function), `solvers` (the monitor and L-BFGS-B), `run` (`transfer_style`, `stylize`,
`build_problem`, `solve`), `errors` and `runtime`. Import from those, or from `nst_keras`.
"""

from nst_keras.errors import (  # noqa: F401
    Interrupted,
    NonFiniteLossError,
    OutOfMemoryError,
    StyleTransferError,
)
from nst_keras.features import features_of  # noqa: F401
from nst_keras.objective import compute_targets  # noqa: F401
from nst_keras.run import (  # noqa: F401
    Problem,
    Result,
    build_problem,
    initial_image,
    prepare,
    solve,
    stylize,
    transfer_style,
)
from nst_keras.solvers import Progress  # noqa: F401

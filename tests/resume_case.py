"""A small real resume case for tests/test_resume.py: 32 px, random seeded weights.

`run_case` runs L-BFGS-B or Adam on the same `render.build_problem` problem, optionally
resuming from a checkpoint and optionally writing one at a given evaluation. Run as a
script, it resumes each optimiser from its checkpoint in this fresh process and saves what
the run produced, for the test to compare with an uninterrupted run:

    python tests/resume_case.py PREFIX MAX_EVALS
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

OPTIMIZERS = ("lbfgs", "adam")


def build():
    """The problem both optimisers solve (the objective does not depend on the optimiser)."""
    from conftest import make_image
    from nst_keras import render
    from nst_keras.config import StyleConfig

    config = StyleConfig(weights=None, height=32, seed=0, precision="float32")
    return render.build_problem(make_image(32, 40, seed=1), make_image(32, 32, seed=2), config)


def run_case(problem, optimizer, max_evals, resume_from=None, save_at=None, save_to=None):
    """Runs `optimizer` to `max_evals`; resumes from `resume_from`; saves at `save_at` evals.

    Returns:
        The `solvers.Outcome`.
    """
    from nst_keras import checkpoint as ckpt
    from nst_keras.engine import solvers

    monitor = solvers.Monitor(problem.objective, problem.objective.terms, problem.x0.shape,
                              max_evals)
    resume = None
    if resume_from is not None:
        saved = ckpt.load_checkpoint(resume_from)
        ckpt.restore_monitor(monitor, saved.monitor)
        resume = saved.solver

    def at_boundary(capture):
        if save_to is not None and monitor.evaluations == save_at:
            state = capture()
            ckpt.save_checkpoint(save_to, ckpt.Checkpoint(ckpt.solver_kind(state), state,
                                                          ckpt.monitor_state(monitor)))

    if optimizer == "lbfgs":
        return solvers.lbfgs(monitor, problem.x0, iterations=1000, bounds=problem.bounds,
                             resume=resume, at_boundary=at_boundary)
    adam = solvers.keras_optimizer("adam", 2.0, decay=0.5, decay_steps=4)
    return solvers.gradient_descent(monitor, problem.x0, optimizer=adam, iterations=1000,
                                    bounds=problem.bounds, resume=resume,
                                    at_boundary=at_boundary)


def summary(outcome):
    """What must match bit for bit: the best point, every loss, the history but its clock."""
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in outcome.history]
    return {"x": outcome.x, "losses": np.array(outcome.losses),
            "history": np.array(repr(history)), "best": np.array(outcome.best.loss),
            "counts": np.array([outcome.iterations, outcome.evaluations])}


def main(prefix, max_evals):
    problem = build()
    for optimizer in OPTIMIZERS:
        outcome = run_case(problem, optimizer, max_evals,
                           resume_from=f"{prefix}-{optimizer}.npz")
        np.savez(f"{prefix}-{optimizer}-resumed.npz", **summary(outcome))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))

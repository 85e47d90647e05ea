"""The Optax optimizer from the `optimizer` config group."""

from __future__ import annotations

import optax

from aerec.run_config import OptimizerConfig

SCHEDULES = ("constant", "cosine")


def build_optimizer(opt_cfg: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
    """Adam with a constant learning rate, or cosine-decayed over `total_steps` steps.

    The cosine schedule ends at `final_fraction` of the initial rate; as it is a function of
    the step count, a resumed run continues on the same curve.
    """
    rate = float(opt_cfg.learning_rate)
    schedule = opt_cfg.schedule
    if schedule == "cosine":
        rate = optax.cosine_decay_schedule(rate, max(total_steps, 1),
                                           alpha=float(opt_cfg.final_fraction))
    elif schedule != "constant":
        raise ValueError(f"optimizer.schedule={schedule!r}; valid: {', '.join(SCHEDULES)}")
    return optax.adam(rate, b1=opt_cfg.b1, b2=opt_cfg.b2, eps=opt_cfg.eps)

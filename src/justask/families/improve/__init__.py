"""The ``improve`` family: Algorithm Distillation (Laskin et al., 2022) on Dark Room. A causal
transformer trained by supervised learning on the learning histories of a tabular Q-learner across
many goals (as they are, and relabeled in hindsight with the optimal action once a history has
found its goal), then run with frozen weights on held-out goals: does its return rise from episode
to episode, as the learner's did, with no weight update?"""

from justask.family import Family

from .config import ImproveConfig

FAMILY = Family(
    name="improve",
    package=__name__,
    summary="in-context RL on Dark Room: a transformer distilled from Q-learning histories improves across "
            "episodes on held-out goals with frozen weights",
    config=ImproveConfig,
    models={"ad": "Algorithm Distillation: causal transformer over across-episode learning histories",
            "hindsight": "the same transformer on the histories, labels relabeled in hindsight with an optimal "
                         "action once the history has found its goal",
            "ed": "expert distillation: the same transformer on the converged episodes only (the control)",
            "learner": "the source learner, tabular Q-learning from scratch"},
    ask=True,
)

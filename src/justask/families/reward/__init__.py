"""The ``reward`` family (D-REX): from a weak demonstrator and injected noise alone, a reward learned
by ranking; the noise-injection data relabeled with the learned return, and a return-conditioned
policy asked for more of it than anything in the data."""

from justask.family import Family

from .config import RewardConfig

FAMILY = Family(
    name="reward",
    package=__name__,
    summary="D-REX on LunarLander: a reward learned by ranking noise-injected clones of a weak demonstrator; "
            "a policy asked for more learned return",
    config=RewardConfig,
    models={"reward": "ranking ensemble r(s) (T-REX loss)", "rvs": "RvS MLP on learned return-to-go",
            "dt": "Decision Transformer on learned return-to-go", "bc": "BC clone of the demonstrator"},
    ask=True,
)

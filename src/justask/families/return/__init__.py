"""The ``return`` family: LunarLander behaviour of graded, consistent quality, relabeled in hindsight
with return-to-go; BC, %BC, an RvS MLP and a Decision Transformer trained on all of it, the
conditioned ones asked for target returns across and above the data's range."""

from justask.family import Family

from .config import ReturnConfig

FAMILY = Family(
    name="return",
    package=__name__,
    summary="LunarLander, mixed-quality behaviour relabeled with return-to-go; DT and RvS asked for target "
            "returns, against BC and %BC",
    config=ReturnConfig,
    models={"bc": "behaviour cloning (MLP)", "pct_bc": "BC on the top episodes by return",
            "rvs": "RvS MLP on (state, return-to-go)", "dt": "Decision Transformer over (R, s, a) tokens"},
)

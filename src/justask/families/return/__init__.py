"""The ``return`` family: LunarLander behaviour of graded, consistent quality, relabeled in hindsight
with return-to-go and with each behaviour's skill rank; BC, %BC, an RvS MLP, a Decision Transformer
and a skill-conditioned MLP trained on all of it, the return-conditioned ones asked for target
returns across and above the data's range, the skill-conditioned one for the top skill."""

from justask.family import Family

from .config import ReturnConfig

FAMILY = Family(
    name="return",
    package=__name__,
    summary="LunarLander, mixed-quality behaviour relabeled with return-to-go and skill; DT and RvS asked for "
            "target returns, a skill-conditioned MLP for the top skill, against BC and %BC",
    config=ReturnConfig,
    models={"bc": "behaviour cloning (MLP)", "pct_bc": "BC on the top episodes by return",
            "rvs": "RvS MLP on (state, return-to-go)", "dt": "Decision Transformer over (R, s[, a]) tokens",
            "skill": "MLP on (state, behaviour's skill rank), asked for the top skill"},
    ask=True,
)

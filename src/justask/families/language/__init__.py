"""The ``language`` family (BabyAI): behaviour that mostly does not follow its mission, described in
hindsight with every true sentence minigrid's verifier accepts; an instruction-conditioned policy
asked, in words, for combinations and phrasings it never saw."""

from justask.family import Family

from .config import LanguageConfig

FAMILY = Family(
    name="language",
    package=__name__,
    summary="BabyAI, hindsight sentences checked by minigrid's verifier; an instruction policy asked for "
            "unseen colour x object and verb x object combinations and phrasings",
    config=LanguageConfig,
    models={"instruction": "FiLM CNN + GRU over K frames, word or frozen MiniLM instruction encoder"},
    ask=True,
)

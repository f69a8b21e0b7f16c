"""The ``language`` family's data: the instruction grammar, hindsight descriptions checked by
minigrid's verifier, held-out rules and paraphrases (:mod:`.grammar`), and the table of
hindsight-labelled steps its policies train on (:mod:`.table`)."""

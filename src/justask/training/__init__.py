"""Training, shared by every family: the one supervised loop (:mod:`.loop`), resuming a killed fit
(:mod:`.resume`), Optuna tuning (:mod:`.tune`), ``model.pt`` files (:mod:`.checkpoints`) and a
tracked, saved, registered fit (:mod:`.runs`)."""

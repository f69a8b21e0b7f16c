"""The LunarLander world, shared by every family that collects in it: the env (:mod:`.env`), its
scripted controllers of graded quality (:mod:`.controllers`), their rollouts as jobs
(:mod:`.jobs`), asking a return-conditioned policy for a target (:mod:`.asking`) and the params
schemas (:mod:`.config`). Nothing here imports a family."""

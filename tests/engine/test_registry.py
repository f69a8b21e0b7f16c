"""The MLflow model registry: a registered policy loads back by name and acts like model.pt."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from helpers import family_module
from justask.families.language.grammar import Vocabulary
from justask.families.language.policy import GridSpec, build_policy, instruction_features, save_policy
from justask.models import Spec, build_model
from justask.registry import policy_entry, register
from justask.settings import TrackingConfig
from justask.tracking import setup_mlflow
from justask.training.checkpoints import save_checkpoint

registry_entry = family_module("language", "train").registry_entry


def test_registered_policies_load_by_name_and_act_like_their_checkpoints(tmp_path):
    mlflow = setup_mlflow(TrackingConfig(mlflow_uri="sqlite:///mlflow.db", experiment="registry-test"), tmp_path)
    torch.manual_seed(0)

    spec = Spec(obs_dim=3, act_dim=4, discrete=True, max_timestep=10, obs_mean=(0.0,) * 3, obs_std=(1.0,) * 3,
                return_scale=10.0)
    rvs = build_model("rvs", {"hidden": 8, "layers": 1, "dropout": 0.0}, spec).eval()
    save_checkpoint(tmp_path / "rvs.pt", "rvs", {"hidden": 8, "layers": 1, "dropout": 0.0}, spec, rvs, {})
    vocab = Vocabulary.build(["go to the red ball", "open the blue door"])
    grid = GridSpec(act_dim=7, encoder="word", vocab_size=len(vocab.words))
    hp = {"hidden": 8, "context": 2, "dropout": 0.0}
    policy = build_policy(hp, grid).eval()
    save_policy(tmp_path / "language.pt", hp, grid, policy, vocab, {})
    with mlflow.start_run() as run:
        for seed in (0, 1):  # one version per training seed, tagged with it and the run
            version = register(mlflow, tmp_path / "rvs.pt", "justask-test-rvs", policy_entry(spec), {"seed": str(seed)})
            assert version == seed + 1
        register(mlflow, tmp_path / "language.pt", "justask-test-language", registry_entry(), {"seed": "0"})
    tags = mlflow.MlflowClient().get_model_version("justask-test-rvs", "2").tags
    assert tags == {"seed": "1", "run_id": run.info.run_id}

    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    frame = pd.DataFrame({**{f"obs_{i}": obs[:, i] for i in range(3)}, "rtg": np.linspace(-5, 5, 5)})
    loaded = mlflow.pyfunc.load_model("models:/justask-test-rvs/1")
    batch = {"obs": torch.as_tensor(obs)[:, None], "rtg": torch.linspace(-5, 5, 5)[:, None]}
    assert np.array_equal(loaded.predict(frame), rvs.act(batch).numpy())

    images = np.random.default_rng(1).integers(0, 3, (4, 7, 7, 3)).astype(np.uint8)
    texts = ["go to the red ball", "open the blue door", "go to the blue door", "open the red ball"]
    asked = pd.DataFrame({"image": [im.tolist() for im in images], "direction": [0, 1, 2, 3], "instruction": texts})
    language = mlflow.pyfunc.load_model("models:/justask-test-language/1")
    direct = policy.act({"images": torch.as_tensor(images)[:, None], "directions": torch.arange(4)[:, None],
                         "mask": torch.ones(4, 1, dtype=torch.bool)}
                        | {k: torch.as_tensor(v) for k, v in instruction_features("word", texts, vocab).items()})
    assert np.array_equal(language.predict(asked), direct.numpy())

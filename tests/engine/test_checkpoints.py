"""A checkpoint's provenance: what it records, how it is checked, and that recording it keeps
``model.pt`` byte-stable (the same weights and settings give the same bytes, however the objects
holding them were built)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from justask.config import Params
from justask.errors import CheckpointError
from justask.io import files_digest
from justask.models import Spec, build_model
from justask.training.checkpoints import (
    check_provenance,
    checkpoint_payload,
    provenance,
    read_payload,
    save_checkpoint,
    settings_digest,
    write_torch,
)

SPEC = Spec(obs_dim=8, act_dim=4, discrete=True, max_timestep=40, obs_mean=(0.0,) * 8, obs_std=(1.0,) * 8,
            return_scale=100.0)
HP = {"hidden": 8, "layers": 1, "dropout": 0.0}
PARAMS = {"families": {"return": {"env": {}, "validate": {}, "relabel": {}, "evaluate": {},
                                  "collect": {"datasets": {"d": [{"controller": "random", "episodes": 4}]}},
                                  "train": {"models": {"rvs": {"hidden": 8, "layers": 1}}}}}}


def prov(**changes) -> dict:
    return {**provenance("return", "d", "rvs", "a" * 64, "b" * 64), **changes}


def test_the_bytes_do_not_depend_on_which_strings_are_one_object(tmp_path):
    """Pickle writes an object met twice as a reference: a payload whose strings are shared (as when
    train builds it) and the same payload read back from disk (no sharing) must give one file."""
    model = build_model("rvs", HP, SPEC)
    dataset = "d"
    save_checkpoint(tmp_path / "a.pt", "rvs", HP, SPEC, model, {"dataset": dataset, "seed": 0},
                    provenance("return", dataset, "rvs", "a" * 64, "b" * 64))
    p = torch.load(tmp_path / "a.pt", weights_only=True)
    write_torch(tmp_path / "b.pt", checkpoint_payload(p["kind"], p["hp"], p["spec"], p["provenance"], p["meta"],
                                                      p["state_dict"]))
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


def test_a_checkpoint_carries_its_provenance_and_passes_its_own_check(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, "rvs", HP, SPEC, build_model("rvs", HP, SPEC), {}, prov())
    payload = read_payload(path, "cpu", ("rvs",), "test")
    assert payload["provenance"] == prov()
    check_provenance(path, payload, prov(), "dvc repro train@return")


@pytest.mark.parametrize("field, why", [
    ("family", "it was copied from another family's outputs"),
    ("dataset", "it was copied from another dataset's slot"),
    ("kind", "it was copied from another model's slot"),
    ("config", "params.yaml's seed, env or train settings changed since it was trained"),
    ("data", "the data it was trained on changed since (or it comes from another run)"),
])
def test_each_field_that_differs_is_named_with_both_values(tmp_path, field, why):
    path = tmp_path / "model.pt"
    other = "c" * 64 if field in ("config", "data") else "other"
    save_checkpoint(path, "rvs", HP, SPEC, build_model("rvs", HP, SPEC), {}, prov(**{field: other}))
    with pytest.raises(CheckpointError) as info:
        check_provenance(path, read_payload(path, "cpu", ("rvs",), "test"), prov(), "dvc repro train@return")
    message = str(info.value)

    def shown(v: str) -> str:
        return repr(v[:12] + "...") if len(v) == 64 else repr(v)

    assert f"{path}: not the model this stage expects: {field}: {shown(other)} in the file, " \
           f"{shown(prov()[field])} expected ({why})" in message
    assert message.endswith("Restore the file with `dvc checkout` or re-run `dvc repro train@return`.")


def test_the_settings_digest_follows_what_train_reads_and_nothing_else():
    base = Params.model_validate(PARAMS)
    same = Params.model_validate({**PARAMS, "tracking": {"experiment": "elsewhere"}})
    reseeded = Params.model_validate({**PARAMS, "seed": 1})
    wider = Params.model_validate({"families": {"return": {**PARAMS["families"]["return"], "train": {
        "models": {"rvs": {"hidden": 16, "layers": 1}}}}}})
    assert settings_digest(base, "return") == settings_digest(same, "return")
    assert len({settings_digest(p, "return") for p in (base, reseeded, wider)}) == 3


def test_files_digest_covers_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.npy").write_bytes(b"1")
    (tmp_path / "a" / "y.json").write_bytes(b"2")
    first = files_digest(tmp_path / "a")
    assert files_digest(tmp_path / "a") == first
    (tmp_path / "a" / "y.json").write_bytes(b"3")
    assert files_digest(tmp_path / "a") != first
    (tmp_path / "a" / "y.json").write_bytes(b"2")
    (tmp_path / "a" / "y.json").rename(tmp_path / "a" / "z.json")
    assert files_digest(tmp_path / "a") != first
    assert files_digest(tmp_path / "a" / "x.npy") == hashlib.sha256(b"1").hexdigest()
    with pytest.raises(FileNotFoundError):
        files_digest(tmp_path / "missing")

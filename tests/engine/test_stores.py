"""Torn Optuna journals (justask.stores), checked by `justask stage train` under the stage lock
before any study opens: a write cut short is cut out and every finished trial kept, a torn write
with a record appended after it keeps the record, damage before the last line is refused with the
file and the line, and only the stage's own family's journals are touched. The real study
through tune(), torn and repaired, is in test_tune.py."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from helpers import ROOT
from justask.config import load_params
from justask.errors import StageFailed
from justask.preflight import preflight
from justask.stores import repair_journal, repair_journals


def test_a_torn_write_followed_by_an_appended_record_keeps_the_record(tmp_path):
    journal = tmp_path / "s.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    optuna.create_study(study_name="s", storage=storage)
    lines = journal.read_bytes().splitlines()
    record = b'{"op_code":4,"worker_id":"w","study_id":0,"datetime_start":"2026-12-07T00:00:00"}'
    journal.write_bytes(b"\n".join(lines) + b"\n" + b'{"op_code":4,"wor' + record + b"\n" + record + b"\n")
    repair = repair_journal(journal)
    assert repair is not None and repair.records == len(lines) + 2 and repair.cut == len(b'{"op_code":4,"wor')
    assert journal.read_bytes() == b"\n".join([*lines, record, record]) + b"\n"
    study = optuna.load_study(study_name="s", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))
    assert len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))) == 2


def test_a_last_record_without_its_newline_gets_one(tmp_path):
    journal = tmp_path / "s.journal"
    journal.write_bytes(b'{"op_code":0,"a":1}\n{"op_code":4,"b":2}')
    repair = repair_journal(journal)
    assert repair is not None and repair.cut == 0 and repair.records == 2
    assert journal.read_bytes() == b'{"op_code":0,"a":1}\n{"op_code":4,"b":2}\n'
    assert not repair.kept_at.exists()


def test_damage_before_the_last_line_is_refused_with_the_file_and_the_line(tmp_path):
    journal = tmp_path / "s.journal"
    data = b'{"op_code":0}\nnot json at all\n{"op_code":4}\n'
    journal.write_bytes(data)
    with pytest.raises(StageFailed, match=r"s\.journal: line 2 of 3 is not an Optuna journal record") as e:
        repair_journal(journal)
    assert "Delete the file" in str(e.value)
    assert journal.read_bytes() == data, "nothing is written when the journal is refused"


def test_a_whole_journal_is_left_alone(tmp_path):
    journal = tmp_path / "s.journal"
    data = b'{"op_code":0}\n{"op_code":4}\n'
    journal.write_bytes(data)
    assert repair_journal(journal) is None and journal.read_bytes() == data
    assert repair_journals(tmp_path / "absent") == []


def test_train_preflight_repairs_only_its_own_familys_journals(tmp_path, capsys):
    folder = tmp_path / "artifacts" / "optuna"
    folder.mkdir(parents=True)
    torn = b'{"op_code":0}\n{"op_co'
    for name in ("return-medium-dt", "reward-ranking"):
        (folder / f"{name}.journal").write_bytes(torn)
    params = load_params(ROOT / "profiles" / "test.yaml")
    preflight("evaluate", "return", params, root=tmp_path)
    assert (folder / "return-medium-dt.journal").read_bytes() == torn, "only train opens studies"
    preflight("train", "return", params, root=tmp_path)
    assert (folder / "return-medium-dt.journal").read_bytes() == b'{"op_code":0}\n'
    assert (folder / "reward-ranking.journal").read_bytes() == torn, "another family's journal was touched"
    out = capsys.readouterr().out
    assert "train (return):" in out and "return-medium-dt.journal: held a torn record" in out

"""`justask report`'s page (justask.webpage) before any evaluation: every family has its section,
saying which DVC target writes what is missing; the page needs nothing outside itself."""

from justask.webpage import build_page


def test_a_family_not_evaluated_yet_says_what_to_run(tmp_path):
    page = build_page(tmp_path, ["return", "reward"], "test")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for family in ("return", "reward"):
        assert f'<section id="{family}">' in page and f"run <code>dvc repro evaluate@{family}</code>" in page
    assert "<img" not in page and "<link" not in page and "<script" not in page

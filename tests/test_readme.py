"""The README is the contract users read: it must document every lake column and both quick-start commands."""

from pathlib import Path

from crmsum.schema import TABLES

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_table_and_column_is_documented():
    for t in TABLES.values():
        section = README.split(f"#### `{t.name}`", 1)
        assert len(section) == 2, f"README has no section for {t.name}"
        body = section[1].split("####", 1)[0]
        for column in t.schema.names:
            assert f"| `{column}` |" in body, f"README does not document {t.name}.{column}"


def test_quick_start_matches_ci():
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "crmsum demo" in README
    assert "python3 -m pytest -q" in README and "python3 -m pytest -q" in ci
    assert "-e '.[test]'" in README and "-e '.[test]'" in ci

"""`crmsum sql` reads the lake and nothing else: every attack on the vault, the file system or the lake
itself is refused with one line; `--unsafe` (documented as a shell) lifts the lockdown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from crmsum.lake import Lake
from crmsum.lake_sql import SqlRefused, run_query

ROOT = Path(__file__).resolve().parents[1]
SECRET = "vault-key-bytes-never-printed"


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "data"
    (d / "vault").mkdir(parents=True)
    (d / "vault" / "key").write_text(SECRET)
    (d / "vault" / "mapping.csv").write_text("pseudonym,real\nPER-1,Иван Петров\n")
    lake = Lake(d / "lake")
    lake.write("crm_companies", pd.DataFrame({"company_id": [1, 2], "name": ["Теххренмаш", "Альфа"]}))
    return d


def lake_of(data_dir: Path) -> Lake:
    return Lake(data_dir / "lake")


def parts(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for p in data_dir.rglob("*") if p.is_file())


def test_reading_the_lake_works(data_dir):
    lake = lake_of(data_dir)
    assert run_query(lake, "SELECT count(*) AS n FROM crm_companies")["n"].tolist() == [2]
    assert "crm_companies" in run_query(lake, "SHOW TABLES")["name"].tolist()
    assert len(run_query(lake, "DESCRIBE crm_companies")) > 0
    assert len(run_query(lake, "EXPLAIN SELECT * FROM crm_leads")) > 0
    part = next((data_dir / "lake" / "crm_companies").glob("*.parquet"))
    assert len(run_query(lake, f"SELECT * FROM read_parquet('{part}')")) >= 0  # the lake's own files: fine


@pytest.mark.parametrize("attack", [
    "SELECT * FROM read_text('{d}/vault/key')",
    "SELECT * FROM read_text('{d}/lake/../vault/key')",
    "SELECT * FROM read_csv('{d}/vault/mapping.csv')",
    "SELECT * FROM read_blob('/etc/passwd')",
    "SELECT * FROM glob('{d}/vault/*')",
])
@pytest.mark.slow
def test_files_outside_the_lake_cannot_be_read(data_dir, attack):
    with pytest.raises(duckdb.Error, match="disabled by configuration") as err:
        run_query(lake_of(data_dir), attack.format(d=data_dir))
    assert SECRET not in str(err.value)


@pytest.mark.parametrize("attack", [
    "COPY (SELECT 1 AS x) TO '{d}/stolen.csv'",
    # a part that would override lake rows (newest file name wins the merge)
    "COPY (SELECT 1::BIGINT AS company_id, 'PWNED' AS name) TO '{d}/lake/crm_companies/part-99999999-evil.parquet'",
    "EXPORT DATABASE '{d}/lake/dump'",
    "ATTACH '{d}/lake/x.duckdb' AS x",
    "SET enable_external_access = true",
    "RESET lock_configuration",
    "INSTALL httpfs",
    "LOAD httpfs",
    "PRAGMA enable_profiling",
    "CALL pragma_version()",
    "SELECT 1; COPY (SELECT 1) TO '{d}/x.csv'",
])
@pytest.mark.slow
def test_writes_and_unlocking_are_refused(data_dir, attack):
    before = parts(data_dir)
    with pytest.raises(SqlRefused, match="only reads the lake") as err:
        run_query(lake_of(data_dir), attack.format(d=data_dir))
    assert "\n" not in str(err.value) and "--unsafe" in str(err.value)
    assert parts(data_dir) == before
    assert "PWNED" not in run_query(lake_of(data_dir), "SELECT name FROM crm_companies")["name"].tolist()


def test_the_lock_holds_even_past_the_statement_check(data_dir):
    """DuckDB itself refuses what the statement check lets through: the session is locked."""
    from crmsum.lake_sql import locked_connection

    con = locked_connection(lake_of(data_dir))
    for attack in (f"COPY (SELECT 1) TO '{data_dir}/x.csv'", "SET enable_external_access = true",
                   f"SELECT * FROM read_text('{data_dir}/vault/key')", "LOAD httpfs"):
        with pytest.raises(duckdb.Error):
            con.execute(attack)
    assert not (data_dir / "x.csv").exists()


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRMSUM_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "crmsum.cli", "sql", *args], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow
def test_cli_refuses_with_one_line_and_unsafe_lifts_it(data_dir):
    q = f"SELECT content FROM read_text('{data_dir}/vault/key')"
    locked = cli(data_dir, q, "--format", "csv")
    assert locked.returncode == 1 and SECRET not in locked.stdout + locked.stderr
    assert len(locked.stderr.strip().splitlines()) == 1 and "disabled by configuration" in locked.stderr
    opened = cli(data_dir, q, "--format", "csv", "--unsafe")
    assert opened.returncode == 0 and SECRET in opened.stdout
    ok = cli(data_dir, "SELECT name FROM crm_companies ORDER BY company_id", "--format", "csv")
    assert ok.returncode == 0 and ok.stdout.split() == ["name", "Теххренмаш", "Альфа"]

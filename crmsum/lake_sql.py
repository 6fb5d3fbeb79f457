"""`crmsum sql`: a DuckDB session over the lake that can read the lake and nothing else.

Why: the lake is anonymized, the rest of DATA_DIR is not (the vault holds the pseudonym key and
mapping). A plain DuckDB connection reads any file (`read_text('…/vault/key')`), writes any file
(`COPY … TO`) and could plant a Parquet part that overrides lake rows. So the session is closed
before the query runs, with DuckDB's own switches (see "Securing DuckDB" in its docs):

- `allowed_directories` = the lake folder only, then `enable_external_access = false`;
- extensions are never installed or loaded on demand (`autoinstall/autoload_known_extensions`);
- `lock_configuration = true`, so the query cannot `SET` any of it back;
- only read statements run (SELECT, EXPLAIN — DESCRIBE, SHOW, SUMMARIZE are SELECTs): COPY,
  EXPORT, ATTACH, INSTALL, LOAD, CALL, PRAGMA and SET are refused before DuckDB sees them, because
  the lake folder itself must stay read-only.

`unsafe=True` (`crmsum sql --unsafe`) skips all of it: an operator's shell, with a shell's reach.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from crmsum.errors import CrmsumError
from crmsum.lake import Lake

READ_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})


class SqlRefused(CrmsumError):
    """The statement would reach beyond reading the lake."""


def lake_dirs(lake: Lake) -> list[str]:
    """The lake folder as DuckDB will see it in the views (as given and resolved), with a trailing slash."""
    if not lake.local:
        return [f"{lake.protocol}{lake._base.rstrip('/')}/"]
    given = str(lake._base).rstrip("/")
    return sorted({f"{given}/", f"{Path(given).resolve()}/"})


def locked_connection(lake: Lake) -> duckdb.DuckDBPyConnection:
    """The lake's views on a connection that can read files under the lake folder only."""
    con = lake.connect()
    dirs = ", ".join("'" + d.replace("'", "''") + "'" for d in lake_dirs(lake))
    con.execute(f"SET allowed_directories = [{dirs}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET lock_configuration = true")
    return con


def check_read_only(query: str) -> None:
    """Refuse anything but read statements (one line saying which and how to lift it)."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise SqlRefused(str(exc).splitlines()[0]) from None
    if not statements:
        raise SqlRefused("no SQL statement given")
    for st in statements:
        if st.type not in READ_STATEMENTS:
            kind = st.type.name.replace("_", " ")
            raise SqlRefused(f"crmsum sql only reads the lake: {kind} statements are refused "
                             "(crmsum sql --unsafe runs anything, with a shell's reach)")


def run_query(lake: Lake, query: str, unsafe: bool = False) -> pd.DataFrame:
    """The query's result as a DataFrame; DuckDB errors propagate as `duckdb.Error`."""
    if unsafe:
        return lake.connect().execute(query).df()
    check_read_only(query)
    return locked_connection(lake).execute(query).df()

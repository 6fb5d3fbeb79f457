"""The lake on S3-compatible object storage (fsspec/s3fs + DuckDB), against a loopback moto server.

Same contract as on local disk: merge by key, rerun writes nothing, compaction keeps every key's
newest row, DuckDB views work, and a second process (its own filesystem instance) sees new parts.
"""

from __future__ import annotations

import logging
import uuid

import pandas as pd
import pytest

from crmsum.config import Settings
from crmsum.lake import Lake, open_lake
from crmsum.schema import TABLES, table
from lake_fixture import AS_OF, build_tables

pytestmark = pytest.mark.slow  # a moto S3 server and the whole precompute on it

pytest.importorskip("moto")
pytest.importorskip("s3fs")

BUCKET = "crmsum-test"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 with one bucket; dummy credentials in the environment."""
    import boto3
    from moto.server import ThreadedMotoServer

    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        mp.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        mp.delenv(k, raising=False)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    boto3.client("s3", endpoint_url=url, region_name="us-east-1").create_bucket(Bucket=BUCKET)
    try:
        yield url
    finally:
        server.stop()
        mp.undo()


def _opts(url: str, fresh_instance: bool = False) -> dict:
    opts: dict = {"client_kwargs": {"endpoint_url": url}}
    if fresh_instance:  # what another process would have: its own s3fs instance and caches
        opts["skip_instance_cache"] = True
    return opts


def _sorted(df: pd.DataFrame, name: str) -> pd.DataFrame:
    key = list(table(name).key)
    return df.sort_values(key).reset_index(drop=True)[sorted(df.columns)]


def test_round_trip_rerun_compact_and_views(s3_endpoint, tmp_path):
    prefix = f"s3://{BUCKET}/rt-{uuid.uuid4().hex[:6]}/lake"
    s3 = Lake(prefix, _opts(s3_endpoint))
    local = Lake(tmp_path / "lake")
    assert not s3.local and local.local
    tables = build_tables(7, 6)
    for name, df in tables.items():
        assert s3.write(name, df) == local.write(name, df) > 0
    for name in tables:
        pd.testing.assert_frame_equal(_sorted(s3.read(name), name), _sorted(local.read(name), name))
    before = {name: s3.parts(name) for name in TABLES}

    # rerun: nothing new, nothing written (not even an empty part)
    for name, df in tables.items():
        assert s3.write(name, df) == 0
    assert {name: s3.parts(name) for name in TABLES} == before

    # a changed row is merged: newest version wins, the rest untouched
    leads = tables["crm_leads"]
    changed = leads.head(1).copy()
    changed["price"] = 999_999
    assert s3.write("crm_leads", changed) == 1
    got = s3.read("crm_leads", "lead_id = ?", [int(changed["lead_id"].iloc[0])])
    assert list(got["price"]) == [999_999]
    assert s3.row_count("crm_leads") == len(leads)

    # compaction: one part, same content
    snapshot = _sorted(s3.read("crm_leads"), "crm_leads")
    s3.compact("crm_leads")
    assert len(s3.parts("crm_leads")) == 1
    pd.testing.assert_frame_equal(_sorted(s3.read("crm_leads"), "crm_leads"), snapshot)

    # DuckDB views over every table, joins included
    con = s3.connect()
    for name in TABLES:
        con.execute(f"SELECT count(*) FROM {name}").fetchone()
    n = con.execute("SELECT count(*) FROM crm_leads l JOIN crm_users u ON u.user_id = l.responsible_user_id"
                    ).fetchone()[0]
    assert n == local.connect().execute(
        "SELECT count(*) FROM crm_leads l JOIN crm_users u ON u.user_id = l.responsible_user_id").fetchone()[0]
    snap = s3.connect(snapshot=True)
    assert snap.execute("SELECT count(*) FROM crm_leads").fetchone()[0] == len(leads)


def test_other_process_writes_are_seen(s3_endpoint):
    """A long-lived reader (the bot) sees parts another process wrote after it connected."""
    prefix = f"s3://{BUCKET}/xp-{uuid.uuid4().hex[:6]}/lake"
    reader = Lake(prefix, _opts(s3_endpoint))
    con = reader.connect()
    assert con.execute("SELECT count(*) FROM crm_users").fetchone()[0] == 0
    assert reader.read("crm_users").empty
    writer = Lake(prefix, _opts(s3_endpoint, fresh_instance=True))
    assert writer.fs is not reader.fs
    users = pd.DataFrame({"user_id": [1, 2], "name": ["PER-0000000a", "PER-0000000b"]})
    assert writer.write("crm_users", users) == 2
    # every Lake call drops cached listings; a connection opened earlier is at most LISTINGS_TTL behind
    assert reader.connect().execute("SELECT count(*) FROM crm_users").fetchone()[0] == 2
    assert len(reader.read("crm_users")) == 2 and len(reader.parts("crm_users")) == 2
    # the reader's own merge sees the writer's rows: rerunning the same rows writes nothing
    assert reader.write("crm_users", users) == 0


def test_open_lake_from_settings_and_precompute(s3_endpoint, tmp_path):
    """CRMSUM_LAKE_URL + CRMSUM_S3_ENDPOINT_URL: the whole precompute runs on the object store."""
    from crmsum.precompute import precompute

    url = f"s3://{BUCKET}/pc-{uuid.uuid4().hex[:6]}/lake"
    s = Settings(data_dir=tmp_path, lake_url=url, s3_endpoint_url=s3_endpoint, llm="offline")
    lake = open_lake(s)
    assert not lake.local and lake.root == url
    local = Lake(tmp_path / "local")
    for name, df in build_tables(7, 4).items():
        lake.write(name, df)
        local.write(name, df)
    r = precompute(s, lake, as_of=AS_OF)
    r_local = precompute(s, local, as_of=AS_OF)
    assert r.failed == 0 and r.computed == r_local.computed > 0
    cols = ["summary_id", "input_hash", "text"]
    pd.testing.assert_frame_equal(_sorted(lake.read("summaries")[cols], "summaries"),
                                  _sorted(local.read("summaries")[cols], "summaries"))
    again = precompute(s, lake, as_of=AS_OF)
    assert again.computed == 0 and again.skipped == r.computed
    assert not any(p.startswith(str(tmp_path)) for p in lake.parts("summaries"))

"""Records written by an older harness still read: their config and hash are what they were.

The fixture records (tests/fixtures/records_7270a97/) were written by commit 7270a97, before option defaults
were written into the resolved config (``method_cfg`` then held only the protocol row's options), from
``tests/fixtures/tiny.yaml``.  Reports read them as they are; a new run of the same run id resolves to another
config (defaults now included, so another hash) and the lifecycle refuses to mix the two in one store with one
error that names the commit that wrote the old record.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness import config as C
from harness import records
from harness.errors import ConfigError
from harness.lifecycle import read_finished_record
from reports import runs as R
from reports.build import build_context, render_markdown

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "records_7270a97"
TINY = Path(__file__).resolve().parent / "fixtures" / "tiny.yaml"
OLD_COMMIT = "7270a97e"


@pytest.fixture()
def old_store(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "records")
    return tmp_path


def test_an_old_records_hash_is_the_hash_of_its_stored_config(old_store):
    for path in sorted((old_store / "records").glob("*.json")):
        rec = records.read_record(path)
        assert rec["provenance"]["commit"].startswith(OLD_COMMIT)
        assert rec["config_hash"] == json.loads(path.read_text())["config_hash"]
        assert records.config_hash(rec["config"]) == rec["config_hash"]


def test_the_report_reads_old_records_with_their_stored_hash(old_store):
    recs = R.load(old_store)
    assert {r["run_id"] for r in recs} == {"nb201__darts-1st__s0", "nb201__milenas__s0"}
    md = render_markdown(build_context(recs, old_store))
    for r in recs:
        assert r["config_hash"].split(":")[1][:12] in md


def test_a_new_run_of_an_old_run_id_is_refused_with_the_old_commit_named(old_store):
    profile = C.load_profile(TINY)
    (new,) = C.expand_profile(profile, spaces=["nb201"], methods=["milenas"])
    old = records.read_record(old_store / "records" / "nb201__milenas__s0.json")
    assert new["method_cfg"].keys() > old["config"]["method_cfg"].keys()  # defaults are in the config now
    new_hash = records.config_hash(new)
    assert new_hash != old["config_hash"]
    with pytest.raises(ConfigError, match=f"different config.*{OLD_COMMIT}.*reports still read it"):
        read_finished_record(old_store / "records" / "nb201__milenas__s0.json", new_hash)

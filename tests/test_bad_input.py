"""Bad input through the command line: one ``error: …`` line on stderr, exit 2, no traceback, and
nothing partial or corrupt left in the output folder.

Most cases call ``harness.cli.main`` in-process (a subprocess costs ~3 s of torch import each);
a few go through a real ``python -m harness`` subprocess to check the entry point itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from harness.cli import main

REPO = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _assert_one_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"exit {code}, stderr: {err}"
    assert len(lines) == 1, f"expected exactly one stderr line, got:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in err
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"


def _cli(capsys, argv: List[str]):
    code = main(argv)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


@pytest.fixture
def out(tmp_path) -> Path:
    return tmp_path / "out"


SEARCH = ["search", "--space", "nb201", "--method", "darts-1st"]


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["search", "--space", "nb201", "--method", "nope"], ["unknown search method 'nope'", "milenas"]),
        (["search", "--space", "nope", "--method", "milenas"], ["nope"]),
        (
            ["search", "--space", "nb201", "--method", "milenas", "--profile", "nope"],
            ["unknown profile 'nope'", "smoke"],
        ),
        (["reproduce", "--profile", "nope"], ["unknown profile"]),
        (["reproduce", "--methods", "nope"], ["nope"]),
        (["reproduce", "--spaces", "nope"], ["nope"]),
        (SEARCH + ["--set", "data.batch_size=-1"], ["data.batch_size must be positive"]),
        (SEARCH + ["--set", "optim.w_lr=abc"], ["optim.w_lr must be a number"]),
        (SEARCH + ["--set", "data.colour=1"], ["unknown key 'colour'"]),
        (SEARCH + ["--set", "nope=1"], ["unknown config key"]),
        (SEARCH + ["--set", "nope.deeper=1"], ["not a config section"]),
        (SEARCH + ["--set", "epochs=0"], ["epochs"]),
        (SEARCH + ["--set", "no-equals-sign"], ["KEY=VALUE"]),
        (SEARCH + ["--variant", "bogus=1"], ["unknown option"]),
        (SEARCH + ["--variant", "zero_grad=1e-3"], ["zero_grad must be one of"]),
        (SEARCH + ["--set", "space_cfg.C=0"], ["nb201 supernet option C must be positive"]),
        (["reproduce", "--workers", "zero"], ["--workers"]),
        (["hypergrad", "--set", "hooks.hypergrad.inner.solver=newton"], ["hooks.hypergrad.inner", "solver"]),
        (["hypergrad", "--set", "hooks.hypergrad.colour=1"], ["hooks.hypergrad", "colour"]),
        (["hypergrad", "--method", "gdas"], ["softmax"]),
    ],
)
def test_bad_config(capsys, out, argv, needles):
    code, _, err = _cli(capsys, argv + ["--out", str(out)])
    _assert_one_error(code, err, *needles)
    assert not out.exists(), "nothing may be created for a rejected command"


@pytest.mark.parametrize("cmd", [SEARCH, ["reproduce", "--profile", "smoke"]])
def test_missing_data_folder(capsys, out, cmd):
    code, _, err = _cli(capsys, cmd + ["--out", str(out), "--data-dir", "/nonexistent/data"])
    _assert_one_error(code, err, "CIFAR-10 not found", "/nonexistent/data")
    assert _files(out) == []


def test_corrupt_data_is_a_checksum_error(capsys, out, tmp_path, shared_data):
    bad = tmp_path / "baddata" / "cifar10-jpeg"
    bad.mkdir(parents=True)
    shutil.copyfile(shared_data / "cifar10-jpeg" / "train.zip", bad / "train.zip")
    with open(bad / "train.zip", "r+b") as fh:  # flip a few bytes in the middle
        fh.seek(1_000_000)
        chunk = fh.read(16)
        fh.seek(1_000_000)
        fh.write(bytes(b ^ 0xFF for b in chunk))
    cache_before = (
        {p.name for p in (REPO / "data" / "cache").glob("*")} if (REPO / "data" / "cache").is_dir() else set()
    )
    code, _, err = _cli(capsys, ["reproduce", "--profile", "smoke", "--out", str(out), "--data-dir", str(bad.parent)])
    _assert_one_error(code, err, "checksum mismatch", "train.zip")
    assert _files(out) == []
    cache_after = {p.name for p in (REPO / "data" / "cache").glob("*")} if (REPO / "data" / "cache").is_dir() else set()
    assert cache_after == cache_before, "a corrupt source must not be decoded into the cache"


def test_truncated_data_is_an_error(capsys, out, tmp_path, shared_data):
    bad = tmp_path / "trunc" / "cifar10-jpeg"
    bad.mkdir(parents=True)
    with open(shared_data / "cifar10-jpeg" / "train.zip", "rb") as src, open(bad / "train.zip", "wb") as dst:
        dst.write(src.read(4096))
    code, _, err = _cli(capsys, SEARCH + ["--out", str(out), "--data-dir", str(bad.parent)])
    _assert_one_error(code, err, "checksum mismatch")
    assert _files(out) == []


@pytest.mark.parametrize(
    "query, needle",
    [
        ("|bad~0|", "bad"),
        ("|nor_conv_3x3~0|+|skip_connect~0|", "expected 3 nodes"),
        ("15625", "out of range"),
    ],
)
def test_malformed_nb201_arch(capsys, query, needle):
    code, out, err = _cli(capsys, ["nb201", "lookup", query])
    _assert_one_error(code, err, needle)
    assert out == ""


@pytest.mark.parametrize(
    "text, needle",
    [
        ("Genotype(normal=[('foo', 0)]", "genotype"),
        ("Genotype(normal=[('foo', 0)], normal_concat=[2, 3, 4, 5], reduce=[], reduce_concat=[2, 3, 4, 5])", "normal"),
        ("NOT_A_ZOO_NAME", "genotype"),
        ("__import__('os').system('true')", "genotype"),
    ],
)
def test_malformed_genotype(capsys, text, needle):
    code, out, err = _cli(capsys, ["darts", "params", text])
    _assert_one_error(code, err, needle)
    assert out == ""


def test_output_path_is_a_file(capsys, tmp_path, shared_data):
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder\n")
    for target in (blocker, blocker / "sub"):
        code, _, err = _cli(capsys, SEARCH + ["--out", str(target)])
        _assert_one_error(code, err, "not writable")
    assert blocker.read_text() == "a file, not a folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_output_under_read_only_folder(capsys, tmp_path, shared_data):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, _, err = _cli(capsys, ["reproduce", "--profile", "smoke", "--out", str(ro / "out")])
        _assert_one_error(code, err, "not writable")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_output_unwritable_even_for_root(capsys, shared_data):
    # /proc is not writable by anyone: the same one-line error when running as root (CI containers)
    code, _, err = _cli(capsys, ["reproduce", "--profile", "smoke", "--out", "/proc/harness-test-out"])
    _assert_one_error(code, err, "not writable")


def test_regress_bad_baseline(capsys, tmp_path):
    runs = tmp_path / "runs"
    (runs / "records").mkdir(parents=True)
    bad = tmp_path / "baseline.json"
    bad.write_text('{"schema": "harness.regress-baseline/1", "entr')
    code, _, err = _cli(capsys, ["regress", str(runs), "--baseline", str(bad)])
    _assert_one_error(code, err, "not valid JSON")
    code, _, err = _cli(capsys, ["regress", str(runs), "--baseline", str(tmp_path / "none.json")])
    _assert_one_error(code, err, "not found")
    code, _, err = _cli(capsys, ["regress", str(tmp_path / "no-runs"), "--baseline", str(bad)])
    _assert_one_error(code, err, "does not exist")


# ---------------------------------------------------------------------- the real entry point


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["search", "--space", "nb201", "--method", "nope", "--out", "{out}"], "unknown search method"),
        (["reproduce", "--profile", "smoke", "--out", "{out}", "--data-dir", "/nonexistent"], "CIFAR-10 not found"),
        (["nb201", "lookup", "|bad~0|"], "bad"),
        (["darts", "params", "Genotype(normal=[('foo', 0)]"], "genotype"),
    ],
)
def test_subprocess_entry_point(tmp_path, argv, needle):
    out = tmp_path / "out"
    argv = [a.replace("{out}", str(out)) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    _assert_one_error(proc.returncode, proc.stderr, needle)
    assert not out.exists()

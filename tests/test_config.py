"""Profiles, protocols and resolved configs."""

from __future__ import annotations

import pytest

from harness import config as C
from harness.errors import ConfigError
from harness.registry import list_methods

FIVE = {"darts-1st", "darts-2nd", "gdas", "milenas", "single-level"}


@pytest.mark.parametrize("name", ["smoke", "cpu", "paper", "gpu-quick"])
def test_shipped_profiles_resolve(name):
    prof = C.load_profile(name)
    configs = C.expand_profile(prof)
    assert FIVE <= {c["method"] for c in configs if c["space"] == "nb201"}
    for cfg in configs:
        assert cfg["scale"] == prof["scale"]
        assert cfg["method"] in list_methods()


def test_smoke_covers_both_spaces_with_all_five_methods():
    configs = C.expand_profile(C.load_profile("smoke"))
    for space in ("nb201", "darts"):
        assert {c["method"] for c in configs if c["space"] == space} == FIVE


def test_paper_profile_is_the_reference_protocol():
    configs = C.expand_profile(C.load_profile("paper"), spaces=["nb201"])
    by_method = {c["method"]: c for c in configs if c["seed"] == 0}
    d1 = by_method["darts-1st"]
    assert d1["space_cfg"] == {"C": 16, "N": 5, "track_running_stats": False}
    assert d1["data"]["split"] == "nb201" and d1["data"]["image_size"] == 32 and d1["data"]["n_train"] is None
    assert d1["epochs"] == 50 and by_method["gdas"]["epochs"] == 250
    assert d1["optim"]["nesterov"] is True and d1["optim"]["w_wd"] == 5e-4
    assert d1["method_cfg"]["order"] == "w_first" and by_method["darts-2nd"]["method_cfg"]["order"] == "alpha_first"
    assert by_method["gdas"]["method_cfg"]["tau_min"] == 0.1
    # the only deviation at paper scale on NB201 is that MiLeNAS/single-level have no NB201 reference
    assert d1["deviations"] == []
    assert any("no NAS-Bench-201 reference" in d for d in by_method["milenas"]["deviations"])
    darts = C.expand_profile(C.load_profile("paper"), spaces=["darts"])
    d = {c["method"]: c for c in darts if c["seed"] == 0}
    assert d["darts-2nd"]["optim"]["w_wd"] == 3e-4 and d["darts-2nd"]["optim"]["nesterov"] is False
    assert d["darts-2nd"]["data"]["split"] == "darts" and d["darts-2nd"]["data"]["val_sampling"] == "fresh-iterator"
    assert len({c["seed"] for c in darts}) == 4


def test_smoke_deviations_are_labelled():
    cfg = C.expand_profile(C.load_profile("smoke"), spaces=["nb201"], methods=["milenas"])[0]
    text = " ".join(cfg["deviations"])
    assert "16x16" in text and "640" in text and "C=8" in text


def test_variant_label_and_run_id():
    prof = C.load_profile("smoke")
    cfg = C.resolve("nb201", {"method": "milenas", "variant": {"lam": 0.1}}, 3, prof, C.find_part(prof, "nb201"))
    assert cfg["label"] == "MiLeNAS (λ=0.1)"
    assert cfg["method_cfg"]["lam"] == 0.1
    assert C.run_id("nb201", "milenas", {"lam": 0.1}, 3) == "nb201__milenas-lam0.1__s3"


def test_overrides_apply_and_are_validated():
    prof = C.load_profile("smoke")
    part = C.find_part(prof, "nb201")
    cfg = C.resolve("nb201", "darts-1st", 0, prof, part, C.parse_overrides(["optim.w_lr=0.05", "epochs=2"]))
    assert cfg["optim"]["w_lr"] == 0.05 and cfg["epochs"] == 2
    assert any("w_lr=0.05" in d for d in cfg["deviations"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.batch_size=-1", "batch_size"),
        ("optim.w_lr=abc", "w_lr"),
        ("optim.momentum=1.5", "momentum"),
        ("data.n_train=55", "multiple of 10"),
        ("data.split=random", "split"),
        ("optim.grad_clip_target=everything", "grad_clip_target"),
        ("method_cfg.lam=-1", "lam"),
        ("method_cfg.bogus=1", "unknown option"),
        ("epochs=0", "epochs"),
        ("nonsense=1", "unknown config key"),
    ],
)
def test_bad_config_values_raise_one_clear_error(override, message):
    prof = C.load_profile("smoke")
    with pytest.raises(ConfigError, match=message):
        C.resolve("nb201", "milenas", 0, prof, C.find_part(prof, "nb201"), C.parse_overrides([override]))


def test_unknown_names():
    with pytest.raises(ConfigError, match="known profiles: .*smoke"):
        C.load_profile("nope")
    prof = C.load_profile("smoke")
    with pytest.raises(ConfigError, match="unknown search method 'nope'"):
        C.resolve("nb201", "nope", 0, prof, C.find_part(prof, "nb201"))
    with pytest.raises(ConfigError, match="unknown search space 'nope'"):
        C.resolve("nope", "milenas", 0, prof, prof["parts"][0])


def test_profile_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nparts: [{space: nb201, methods: [milenas], colour: red}]\n")
    with pytest.raises(ConfigError, match="unknown key"):
        C.load_profile(bad)
    bad.write_text("name: bad\nseeds: [-1]\nparts: [{space: nb201, methods: [milenas]}]\n")
    with pytest.raises(ConfigError, match="seeds"):
        C.load_profile(bad)
    bad.write_text("parts: [unclosed")
    with pytest.raises(ConfigError, match="YAML"):
        C.load_profile(bad)


@pytest.mark.parametrize("name", ["cpu-figures", "paper-figures"])
def test_figure_experiments_name_the_paper_variants(name):
    configs = C.expand_profile(C.load_profile(name))
    labels = {c["label"] for c in configs}
    assert {
        "Single-level",
        "MiLeNAS (λ=0.1)",
        "MiLeNAS",
        "MiLeNAS (λ=999)",
        "DARTS (2nd order)",
        "DARTS-2nd → MiLeNAS",
        "GDAS (MiLeNAS repo, Fig. 5)",
        "MiLeNAS (Gumbel)",
    } <= labels
    lam = {c["method_cfg"].get("lam") for c in configs if c["method"] == "milenas"}
    assert lam == {0.1, 1.0, 999}
    assert len({c["seed"] for c in configs}) >= 3


def test_method_entry_seeds_override_the_part(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "name: p\nscale: custom\nseeds: [0, 1, 2]\nparts:\n  - space: nb201\n    methods:\n"
        "      - milenas\n      - {method: gdas, seeds: [5]}\n"
        "      - {method: milenas, variant: {fused: true}, seeds: [0, 1]}\n"
    )
    configs = C.expand_profile(C.load_profile(prof))
    seeds = {}
    for c in configs:
        seeds.setdefault(C.run_id("nb201", c["method"], c["variant"], 0), []).append(c["seed"])
    assert seeds == {
        "nb201__milenas__s0": [0, 1, 2],
        "nb201__gdas__s0": [5],
        C.run_id("nb201", "milenas", {"fused": True}, 0): [0, 1],
    }
    # an explicit seed list (search --seed) still wins
    assert {c["seed"] for c in C.expand_profile(C.load_profile(prof), seeds=[7])} == {7}
    for bad, match in (("{method: gdas, seeds: [-1]}", "seeds"), ("{method: gdas, seed: [1]}", "unknown key")):
        prof.write_text(f"name: p\nparts:\n  - space: nb201\n    methods: [{bad}]\n")
        with pytest.raises(ConfigError, match=match):
            C.expand_profile(C.load_profile(prof))


# ---------------------------------------------------------------- one validation mechanism (harness.schema)
def test_schema_messages_name_the_setting_and_what_is_allowed():
    from harness.schema import Option, validate_section

    opts = {
        "lr": Option("a rate", float, minimum=0, exclusive=True),
        "n": Option("a count", int, nullable=True),
        "m": Option("momentum", float, minimum=0, maximum=1, exclusive_maximum=True),
        "mode": Option("a mode", str, choices=("a", "b")),
    }
    validate_section({"lr": 0.1, "n": None, "m": 0.0, "mode": "a"}, opts, "optim")
    for values, message in (
        ({"lr": 0}, "optim.lr must be positive, not 0"),
        ({"lr": True}, "optim.lr must be a number, not True"),
        ({"n": 1.5}, "optim.n must be an integer or null"),
        ({"m": 1.0}, r"optim.m must be in \[0, 1\), not 1.0"),
        ({"mode": "c"}, r"optim.mode must be one of \['a', 'b'\]"),
        ({"colour": 1}, "optim: unknown key 'colour'; known keys: lr, n, m, mode"),
    ):
        with pytest.raises(ConfigError, match=message):
            validate_section(values, opts, "optim")
    with pytest.raises(ConfigError, match="method x: unknown option 'y'"):
        validate_section({"y": 1}, opts, "method x", noun="option")
    with pytest.raises(ConfigError, match="method x option lr must be positive"):
        validate_section({"lr": -1}, opts, "method x", noun="option")


def test_number_text_becomes_a_number_only_where_the_option_is_a_number():
    from harness.schema import Option

    assert Option("", float).coerce("1e-3") == 0.001 and Option("", int).coerce("12") == 12
    assert Option("", str).coerce("1e-3") == "1e-3" and Option("", float).coerce("abc") == "abc"
    assert Option("", int).coerce("1e3") == "1e3"  # not an integer: left for the check to reject
    prof = C.load_profile("smoke")
    part = C.find_part(prof, "nb201")
    cfg = C.resolve(
        "nb201",
        {"method": "milenas", "variant": {"lam": "1e-1"}},
        0,
        prof,
        part,
        C.parse_overrides(["optim.a_lr=1e-3", "optim.w_wd=5E-4"]),
    )
    assert cfg["optim"]["a_lr"] == 0.001 and cfg["optim"]["w_wd"] == 5e-4
    assert cfg["variant"] == {"lam": 0.1} and cfg["method_cfg"]["lam"] == 0.1 and cfg["label"] == "MiLeNAS (λ=0.1)"
    with pytest.raises(ConfigError, match="data.n_train must be an integer or null, not '64e1'"):
        C.resolve("nb201", "milenas", 0, prof, part, C.parse_overrides(["data.n_train=64e1"]))
    with pytest.raises(ConfigError, match=r"data.split must be one of .*, not '1e3'"):
        C.resolve("nb201", "milenas", 0, prof, part, C.parse_overrides(["data.split=1e3"]))


def test_every_method_option_is_in_the_config_with_its_default():
    prof = C.load_profile("smoke")
    part = C.find_part(prof, "nb201")
    cfg = C.resolve("nb201", "darts-1st", 0, prof, part)
    assert cfg["method_cfg"] == {"order": "w_first", "zero_grad": "zero"}  # zero_grad: the option's default
    single = C.resolve("nb201", "single-level", 0, prof, part)
    assert single["method_cfg"]["fused"] is False


def test_supernet_options_are_checked_when_the_config_resolves():
    prof = C.load_profile("smoke")
    part = C.find_part(prof, "nb201")
    with pytest.raises(ConfigError, match="nb201 supernet option C must be positive"):
        C.resolve("nb201", "darts-1st", 0, prof, part, {"space_cfg.C": 0})
    with pytest.raises(ConfigError, match="nb201 supernet: unknown option 'layers'"):
        C.resolve("nb201", "darts-1st", 0, prof, part, {"space_cfg.layers": 3})


def test_methods_flag_adds_a_method_the_profile_does_not_name():
    prof = C.load_profile("smoke")
    configs = C.expand_profile(prof, methods=["milenas-gumbel"])
    assert {(c["space"], c["method"], c["seed"]) for c in configs} == {
        ("nb201", "milenas-gumbel", 0),
        ("darts", "milenas-gumbel", 0),
    }
    nb = next(c for c in configs if c["space"] == "nb201")
    assert nb["data"]["n_train"] == 640 and nb["space_cfg"]["C"] == 8 and nb["epochs"] == 3
    # a method the profile names keeps its own entries only
    assert {c["method"] for c in C.expand_profile(prof, methods=["milenas"])} == {"milenas"}


def _protocol_package(tmp_path, monkeypatch, files):
    """A protocol package ``toyproto`` (``{space: yaml text}``) added to the harness.protocols packages."""
    from harness import registry

    pkg = tmp_path / "toyproto"
    pkg.mkdir()
    for space, text in files.items():
        (pkg / f"{space}.yaml").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    builtin = registry.protocol_packages()
    monkeypatch.setattr(registry, "protocol_packages", lambda: builtin + [("toy-plugin", "toyproto")])


def test_protocol_rows_come_from_every_protocol_package(tmp_path, monkeypatch):
    _protocol_package(tmp_path, monkeypatch, {"nb201": "methods:\n  toy-method: {method: {order: w_first}}\n"})
    proto = C.load_protocol("nb201")
    assert proto["methods"]["toy-method"] == {"method": {"order": "w_first"}}
    assert proto["origins"]["toy-method"] == {"package": "toy-plugin", "file": "toyproto/nb201.yaml"}
    assert (
        proto["origins"]["darts-1st"]
        == proto["origins"]["settings"]
        == {"package": "milenas-harness", "file": "harness/protocols/nb201.yaml"}
    )
    assert "darts" in C.load_protocol("darts")["origins"]["settings"]["file"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("methods:\n  darts-1st: {method: {order: alpha_first}}\n", "row of darts-1st is given twice"),
        ("epochs: 3\n", "already sets"),
        ("methods:\n  x: {colour: red}\n", "keys among"),
        ("colour: red\n", "unknown key"),
    ],
)
def test_conflicting_protocol_rows_are_one_error(tmp_path, monkeypatch, text, message):
    _protocol_package(tmp_path, monkeypatch, {"nb201": text})
    with pytest.raises(ConfigError, match=message):
        C.load_protocol("nb201")


def test_a_method_without_a_protocol_row_says_so(tmp_path, monkeypatch):
    prof = C.load_profile("smoke")
    _protocol_package(tmp_path, monkeypatch, {})
    proto = C.load_protocol("nb201")
    proto["methods"].pop("single-level")
    proto["origins"].pop("single-level")
    monkeypatch.setattr(C, "load_protocol", lambda space: proto)
    cfg = C.resolve("nb201", "single-level", 0, prof, C.find_part(prof, "nb201"))
    assert cfg["protocol_provenance"]["method_row"] is None
    assert any("no nb201 protocol row for single-level" in d for d in cfg["deviations"])
    assert cfg["method_cfg"]["order"] == "alpha_first"  # the option's default


def test_every_setting_that_changes_the_search_leaves_a_deviation():
    prof = C.load_profile("paper")
    part = C.find_part(prof, "nb201")
    assert C.resolve("nb201", "darts-1st", 0, prof, part)["deviations"] == []
    cfg = C.resolve(
        "nb201",
        "milenas",
        0,
        prof,
        part,
        {
            "data.batch_size": 32,
            "space_cfg.gdas_edge_form": "sampled_only",
            "method_cfg.lam": 0.1,
            "early_stop": True,
            "data.n_eval": 1000,
        },
    )
    devs = cfg["deviations"]
    assert "data.batch_size=32 (reference 64)" in devs
    assert "supernet gdas_edge_form=sampled_only (reference xautodl)" in devs
    assert "method_cfg.lam=0.1 (reference 1.0)" in devs
    assert any(d.startswith("early_stop:") for d in devs)
    assert not any("n_eval" in d for d in devs)  # the per-epoch measurement, not the search

"""Structure checks: no import circles, and a method is one adapter file plus its protocol rows."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest
import yaml

from harness import config as C
from harness import registry

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "baselines", "reports")


def _modules() -> Dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            mods[name[: -len(".__init__")] if name.endswith(".__init__") else name] = path
    return mods


def _is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def import_graph() -> Dict[str, Set[str]]:
    """module -> project modules it imports anywhere in its body (lazy imports count too), plus the
    parent packages Python runs first when a submodule is imported."""
    mods = _modules()
    graph: Dict[str, Set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n) for block in ast.walk(tree) if _is_type_checking_block(block) for n in ast.walk(block)
        }  # `if TYPE_CHECKING:` imports never run
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                parts = t.split(".")
                for i in range(1, len(parts) + 1):
                    q = ".".join(parts[:i])
                    if q in mods and q != mod and not mod.startswith(q + "."):
                        graph[mod].add(q)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_registry_imports_no_plugin_statically():
    assert not {m for m in import_graph()["harness.registry"] if m.startswith(("baselines", "harness.spaces"))}


def test_no_module_outside_baselines_keeps_a_list_of_method_names():
    """Method names (as string literals, docstrings aside) may appear in adapters, protocols, profiles and
    the paper's claims (reports/verdicts, published, figures, comparisons, tables name the methods a claim
    or figure compares; hypergrad names the directions it measures) — nowhere else."""
    names = set(registry.list_methods())
    allowed = {
        "reports/verdicts.py",
        "reports/published.py",
        "reports/figures.py",
        "reports/comparisons.py",
        "reports/tables.py",
        "reports/hypergrad.py",
        "harness/hypergrad",
    }
    offenders = {}
    for pkg in ("harness", "reports"):
        for path in (REPO / pkg).rglob("*.py"):
            rel = str(path.relative_to(REPO))
            if any(rel.startswith(a) for a in allowed):
                continue
            tree = ast.parse(path.read_text())
            docstrings = {
                id(n.body[0].value)
                for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                and n.body
                and isinstance(n.body[0], ast.Expr)
                and isinstance(n.body[0].value, ast.Constant)
            }
            literals = {
                n.value
                for n in ast.walk(tree)
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
            }
            hits = sorted(names & literals)
            if hits:
                offenders[rel] = hits
    assert offenders == {}


def test_a_new_method_is_its_adapter_plus_protocol_rows(tmp_path, monkeypatch):
    from baselines.darts import DartsFirstOrder
    from harness.methods import BASE_OPTIONS, Option

    @registry.register_method("toy-method")
    class ToyMethod(DartsFirstOrder):
        label = "Toy method"
        color = "#000000"
        display_rank = 10_000
        role = "variant"
        options = {**BASE_OPTIONS, "knob": Option("a toy option", float, minimum=0)}

    try:
        # its protocol rows: a package in the harness.protocols entry-point group (as a plugin ships them)
        proto = tmp_path / "toy_rows"
        proto.mkdir()
        rows = {"methods": {"toy-method": {"method": {"order": "w_first", "knob": 0.5}}}}
        (proto / "nb201.yaml").write_text(yaml.safe_dump(rows))
        monkeypatch.syspath_prepend(str(tmp_path))
        packages = registry.protocol_packages() + [("toy-plugin", "toy_rows")]
        monkeypatch.setattr(registry, "protocol_packages", lambda: packages)
        prof = {"name": "t", "scale": "smoke", "parts": [{"space": "nb201", "methods": ["toy-method"]}]}
        cfg = C.resolve("nb201", "toy-method", 0, prof, prof["parts"][0])
        assert cfg["label"] == "Toy method" and cfg["method_cfg"]["knob"] == 0.5
        assert cfg["protocol_provenance"]["method_row"] == {"package": "toy-plugin", "file": "toy_rows/nb201.yaml"}
        assert C.make_label("toy-method", {"knob": 1}) == "Toy method (knob=1)"
        assert "toy-method" in registry.list_methods(role="variant")
        assert registry.list_methods(order="display")[-1] == "toy-method"
        with pytest.raises(C.ConfigError, match="knob must be >= 0"):
            C.resolve("nb201", "toy-method", 0, prof, prof["parts"][0], {"method_cfg.knob": -1})
        with pytest.raises(C.ConfigError, match="unknown option"):
            C.resolve("nb201", "toy-method", 0, prof, prof["parts"][0], {"method_cfg.dial": 1})
    finally:
        registry._METHODS.pop("toy-method", None)


def test_search_and_evaluation_share_one_lifecycle():
    from harness.evaluate import EvalRun
    from harness.lifecycle import Run
    from harness.runner import SearchRun

    for cls in (SearchRun, EvalRun):
        assert issubclass(cls, Run)
        for step in ("run", "existing", "resume", "save_checkpoint", "new_record", "_finish_failed"):
            assert step not in vars(cls), f"{cls.__name__} overrides the lifecycle step {step}"


def _string_literals(tree: ast.AST) -> Dict[str, List[int]]:
    """String constants of a module (docstrings aside) → the lines they are on."""
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    out: Dict[str, List[int]] = {}
    for n in ast.walk(tree):
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings:
            out.setdefault(n.value, []).append(n.lineno)
    return out


#: modules that may name a space, and why: each names something else that shares the space's name
SPACE_NAME_ALLOWED = {
    # data split names (config ``data.split``, part of every recorded config and its hash): the NB201 cifar-split
    # and the DARTS index halves; renaming them would change the config hash of every existing record
    "harness/data.py": "data split names",
    # the evaluation recipe ``recipe: darts`` (quark0/darts cnn/train.py), recorded in evaluation configs
    "harness/eval_recipe.py": "evaluation recipe name",
    # the per-space tool subcommands (``harness nb201 lookup``, ``harness darts params``) are command names
    "harness/cli.py": "subcommand names",
    # published documents are named after their paper (data/published/*.yaml ``source:``)
    "reports/published.py": "published document names",
}


def test_no_module_outside_a_space_package_names_a_space():
    """Space names (as string literals, docstrings aside) may appear in the space's own package
    (``harness/spaces/<space>/``), the protocol/profile YAML data, tests and docs — nowhere else in the code:
    config checks, plans, regression checks and reports ask the space (``harness.registry.get_space``)."""
    names = set(registry.list_spaces())
    offenders = {}
    for pkg in ("harness", "reports"):
        for path in (REPO / pkg).rglob("*.py"):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith("harness/spaces/") or any(rel.startswith(a) for a in SPACE_NAME_ALLOWED):
                continue
            hits = {
                name: lines for name, lines in _string_literals(ast.parse(path.read_text())).items() if name in names
            }
            if hits:
                offenders[rel] = hits
    assert offenders == {}


def test_the_space_name_check_finds_a_literal():
    tree = ast.parse('"""doc nb201"""\nSPACE = "nb201"\ndef f():\n    """darts"""\n    return {"darts": 1}\n')
    assert {k: v for k, v in _string_literals(tree).items() if k in {"nb201", "darts"}} == {"nb201": [2], "darts": [5]}


def test_every_space_carries_its_report_metadata():
    from harness.spaces.base import CELL_JUDGED_BY

    ranks = []
    for name in registry.list_spaces():
        cls = registry.get_space(name)
        assert cls.label and cls.cell_judged_by in CELL_JUDGED_BY, name
        assert set(cls.expected_roles) <= {"core", "variant"} and cls.cost_model_keys, name
        assert {m for m in cls.regress_metrics} <= {c.key for c in cls.report_columns}, name
        ranks.append(cls.display_rank)
    assert len(set(ranks)) == len(ranks)


def test_the_scale_order_has_one_home():
    """Only ``harness/scales.py`` lists the scales (a tuple or list literal naming three or more of them)."""
    from harness.scales import SCALES

    allowed = {"harness/scales.py"}
    offenders = []
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            rel = path.relative_to(REPO).as_posix()
            if rel in allowed:
                continue
            for n in ast.walk(ast.parse(path.read_text())):
                if isinstance(n, (ast.Tuple, ast.List, ast.Set)):
                    named = {e.value for e in n.elts if isinstance(e, ast.Constant) and e.value in SCALES}
                    if len(named) >= 3:
                        offenders.append(f"{rel}:{n.lineno}")
    assert offenders == []
    assert SCALES[0] == "smoke" and SCALES[-1] == "paper"


@pytest.mark.parametrize("method", registry.list_methods())
def test_every_registered_method_has_its_docs_page(method):
    page = REPO / "docs" / "methods" / f"{method}.md"
    assert page.is_file(), f"docs/methods/{method}.md: what it computes, its reference, options, deviations"
    assert f"methods/{method}.md" in (REPO / "docs" / "README.md").read_text()


@pytest.mark.parametrize("space", registry.list_spaces())
def test_every_registered_space_has_its_docs_pages(space):
    assert (REPO / "docs" / "spaces" / f"{space}.md").is_file() and (
        REPO / "docs" / "protocols" / f"{space}.md"
    ).is_file()

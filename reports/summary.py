"""The report's shared content model: scope, scale banner, deviations and provenance, built once
from the records and rendered by the Markdown, HTML and PDF writers."""

from __future__ import annotations

import platform
from collections import Counter
from typing import Any, Dict, List, Tuple

from . import published as P
from . import runs as R


def scale_banner(records) -> str:
    sc = R.scales_present(records)
    if not records:
        return "NO RUNS — nothing was measured"
    if sc == ["smoke"]:
        return "SMOKE SCALE — not a reproduction"
    if len(sc) > 1:
        return f"MIXED SCALES ({', '.join(sc)}) — verdicts per scale, side by side, never pooled" + (
            "; smoke runs are not a reproduction" if "smoke" in sc else ""
        )
    if sc == ["paper"]:
        return "PAPER SCALE — full protocol"
    return f"REDUCED SCALE ({sc[0]}) — trends only, not a reproduction of the published numbers"


def scope(records, runs_dir) -> Dict[str, Any]:
    spaces = {}
    for sp in R.spaces():
        rs = [r for r in records if r.get("space") == sp]
        if not rs:
            continue
        groups = []
        for kind in ("search", "evaluation"):
            for scale in R.scales_present(rs):
                for key, g in R.group(rs, kind, sp, scale=scale).items():
                    groups.append(
                        {
                            "kind": kind,
                            "label": R.group_label(g[0]),
                            "method": key[1],
                            "scale": scale,
                            "variant": g[0].get("variant") or {},
                            "seeds": [r.get("seed") for r in g],
                            "ok": sum(R.is_ok(r) for r in g),
                            "failed": sum(r.get("status") == "failed" for r in g),
                            "running": sum(r.get("status") == "running" for r in g),
                        }
                    )
        missing = [
            R.method_label(m)
            for m in R.expected_methods(sp)
            if not any(r.get("method") == m and r.get("kind", "search") == "search" for r in rs)
        ]
        spaces[sp] = {
            "name": R.space_label(sp),
            "groups": groups,
            "missing_methods": missing,
            "dataset": R.dataset_label(rs),
            "scale": R.scale_of(rs),
            "scales": R.scales_present(rs),
        }
    other = sorted({str(r.get("space")) for r in records} - set(R.spaces()))
    return {
        "runs_dir": str(runs_dir),
        "n_records": len(records),
        "n_ok": sum(R.is_ok(r) for r in records),
        "n_failed": sum(r.get("status") == "failed" for r in records),
        "n_running": sum(r.get("status") == "running" for r in records),
        "scales": R.scales_present(records),
        "banner": scale_banner(records),
        "spaces": spaces,
        "other_spaces": other,
        "devices": R.devices(records),
    }


def scope_items(sc: Dict[str, Any]) -> List[Tuple[int, str]]:
    """The scope as (level, text) items, without bullet characters: each renderer draws its own bullets."""
    items = [
        (
            0,
            f"Run folder: {sc['runs_dir']} — {sc['n_records']} records ({sc['n_ok']} ok, {sc['n_failed']} failed, "
            f"{sc['n_running']} unfinished); scales present: {', '.join(sc['scales']) or 'none'}; "
            f"devices: {', '.join(sc['devices']) or 'none recorded'}.",
        )
    ]
    if not sc["n_records"]:
        items.append((0, "No run records were found: every table below shows only published numbers and 'missing'."))
    multi = len(sc["scales"]) > 1
    for _sp, d in sc["spaces"].items():
        items.append((0, f"{d['name']} (data: {d['dataset']}; scale {', '.join(d.get('scales') or [d['scale']])}):"))
        for g in d["groups"]:
            st = (
                f"{g['ok']} ok"
                + (f", {g['failed']} failed" if g["failed"] else "")
                + (f", {g['running']} unfinished" if g["running"] else "")
            )
            at = f" at {g['scale']} scale" if multi else ""
            items.append((1, f"{g['label']} [{g['kind']}]{at}: seeds {', '.join(map(str, g['seeds']))} ({st})"))
        if d["missing_methods"]:
            items.append((1, "missing (no runs): " + ", ".join(d["missing_methods"])))
    if sc["other_spaces"]:
        items.append((0, "Records of other spaces (not reported): " + ", ".join(sc["other_spaces"])))
    return items


def scope_lines(sc: Dict[str, Any]) -> List[str]:
    """Plain-text scope lines (level-1 items indented by two spaces, no bullet characters)."""
    return [("  " * lvl) + text for lvl, text in scope_items(sc)]


def deviations(records) -> Dict[str, Any]:
    fixed = P.load_deviations()
    from_cfg: Counter = Counter()
    for r in records:
        for d in (r.get("config") or {}).get("deviations") or []:
            from_cfg[str(d)] += 1
    return {"fixed": fixed, "from_records": sorted(from_cfg.items(), key=lambda kv: (-kv[1], kv[0]))}


def deviation_lines(dv, n_records) -> List[str]:
    lines = []
    for d in dv["fixed"]:
        lines.append(
            f"[{d.get('id')}] {d.get('text')} (source: {d.get('source', '–')}; "
            f"applies to: {d.get('applies_to', 'all')})"
        )
    for text, n in dv["from_records"]:
        lines.append(f"[record config] {text} ({n} of {n_records} runs)")
    return lines


def provenance(records, pub) -> Dict[str, Any]:
    def uniq(fn):
        c = Counter()
        for r in records:
            v = fn(r)
            if v is not None and v != "":
                c[str(v)] += 1
        return sorted(c.items())

    versions: Counter = Counter()
    for r in records:
        for k, v in (R.prov(r).get("versions") or {}).items():
            versions[f"{k} {v}"] += 1
    try:
        import matplotlib
        import numpy
        import scipy

        report_versions = {
            "python": platform.python_version(),
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "matplotlib": matplotlib.__version__,
        }
    except Exception:  # pragma: no cover
        report_versions = {}
    return {
        "devices": uniq(lambda r: R.prov(r).get("device")),
        "threads": uniq(lambda r: R.prov(r).get("threads")),
        "commits": uniq(
            lambda r: (
                (R.prov(r).get("commit") or "?")[:12] + (" (dirty)" if R.prov(r).get("dirty") else "")
                if R.prov(r)
                else None
            )
        ),
        "versions": sorted(versions.items()),
        "datasets": uniq(lambda r: R.prov(r).get("dataset")),
        "dataset_sha256": uniq(lambda r: R.prov(r).get("dataset_sha256")),
        "splits": uniq(lambda r: R.prov(r).get("split")),
        "image_sizes": uniq(lambda r: R.prov(r).get("image_size")),
        "benchmark_sources": uniq(lambda r: R.prov(r).get("benchmark_source")),
        "benchmark_columns": [c for sp in R.spaces(judged_by="benchmark") for c, _ in R.report_columns(sp)]
        + ["(200-epoch schedule, test split; 12-epoch columns not used)"],
        "profiles": uniq(lambda r: r.get("profile")),
        "config_hashes": uniq(
            lambda r: (
                f"{r.get('space')}/{r.get('method')}"
                f"{'' if R.is_default_variant(r) else ' ' + R.variant_key(r.get('variant'))}: {r.get('config_hash')}"
            )
        ),
        "seeds": uniq(lambda r: f"{r.get('space')}/{r.get('method')}: seed {r.get('seed')}"),
        "published": [{"source": k, "citation": v.get("citation", k)} for k, v in pub.items()],
        "report_versions": report_versions,
    }


def provenance_lines(pv) -> List[str]:
    def j(items):
        return "; ".join(f"{k} (×{n})" for k, n in items) or "not recorded"

    lines = [
        f"Devices: {j(pv['devices'])}",
        f"Threads: {j(pv['threads'])}",
        f"Commits: {j(pv['commits'])}",
        f"Versions (runs): {j(pv['versions'])}",
        "Versions (report): " + ", ".join(f"{k} {v}" for k, v in pv["report_versions"].items()),
        f"Profiles: {j(pv['profiles'])}",
        f"Data: {j(pv['datasets'])}",
        f"Data sha256: {j(pv['dataset_sha256'])}",
        f"Splits: {j(pv['splits'])}",
        f"Image size: {j(pv['image_sizes'])}",
        f"Benchmark source: {j(pv['benchmark_sources'])}",
        "Benchmark columns used: " + ", ".join(pv["benchmark_columns"]),
        "Published numbers: "
        + "; ".join(f"{p['source']}: {p['citation']}" for p in pv["published"])
        + " (data/published/*.yaml: each table names its public source)",
        "Config hashes: " + j(pv["config_hashes"]),
    ]
    return lines

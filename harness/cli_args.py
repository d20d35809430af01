"""Command-line arguments several commands share, declared once (``harness.cli`` and the commands that register
their own parser: ``calibrate``, ``doctor``, ``hypergrad``)."""

from __future__ import annotations

import argparse


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="data folder (default: $HARNESS_DATA, else ./data); README 'Data'")


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")


def add_set(p: argparse.ArgumentParser, example: str = "--set optim.w_lr=0.05 --set method_cfg.lam=0.1") -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a resolved config value, e.g. {example}",
    )


def add_trackers(p: argparse.ArgumentParser) -> None:
    """``--tracker`` / ``--mlflow-uri``: live trackers watching the runs (``harness.trackers``, docs/trackers.md)."""
    from harness.trackers import add_tracker_arguments

    add_tracker_arguments(p)


def add_matrix_filters(p: argparse.ArgumentParser, of_profile: bool = True) -> None:
    """``--spaces`` / ``--methods``: narrow a profile's matrix (``harness.config.select_matrix``), or the registry's
    spaces and methods (``of_profile=False``)."""
    p.add_argument("--spaces", nargs="*", default=None, help="only these spaces")
    joins = " (a registered method the profile does not name joins every part with its sizes and seeds)"
    p.add_argument("--methods", nargs="*", default=None, help="only these methods" + (joins if of_profile else ""))

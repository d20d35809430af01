"""R-DARTS (Zela, Elsken, Saikia, Marrakchi, Brox, Hutter, "Understanding and Robustifying Differentiable
Architecture Search", ICLR 2020; automl/RobustDARTS@3dec3fe; docs/methods/darts-es.md, docs/methods/rdarts-l2.md).

Both variants are DARTS second order (``--unrolled`` in every script, src/search/architect.py = quark0's) with
R-DARTS's settings (src/search/args.py:28-68; protocol rows in ``harness/protocols``):

* ``darts-es`` — DARTS-ES: early stopping on the dominant eigenvalue of ∇²_α L_val, measured by the ``collapse``
  hook (``harness.diagnostics.collapse``, every ``ev_freq`` = 2 epochs).  ``es_decision`` replays the reference's
  ``EVLocalAvg`` (src/utils.py:31-140) on the record's eigenvalue series: a local average of the last
  ``window`` = 5 eigenvalues (of all of them while fewer than 5 exist, from the 3rd on), attributed to the window
  centre c = t − ev_freq·⌊window/2⌋; once c − ev_freq·δ ≥ ``es_start_epoch`` (δ = 4, start 10) the search stops
  if LA(c) / LA(c − ev_freq·δ) > ``factor`` = 1.3 and reports the cell of epoch c − ev_freq·δ (train_search.py:
  178-194; with the defaults: stop at t ≥ 22, cell of epoch t − 12).  No check after the last epoch (as the ref).
  The runner stops the run and reports that epoch's cell (``SearchRun.stop_early``; record ``final.early_stop``).
* ``rdarts-l2`` — R-DARTS(L2): a larger weight decay on w (SGD and the unrolled virtual step), the option
  ``weight_decay`` (the script's grid 3e-4·3^k, k = 0..4: ``--variant weight_decay=0.0081``;
  scripts/start_search.sh).  How R-DARTS picks one value from the grid is UNCONFIRMED (the code writes each
  setting's final search-val error, results_perf.yaml); the default here is 0.0027 (the grid's middle), a choice.

Not implemented: DARTS-ADA (checkpoint rollback with a mid-run weight-decay change) and R-DARTS(DP) (drop path
inside the search supernet and a cutout-probability ramp).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from baselines.darts import DartsSecondOrder
from harness.methods import Option
from harness.registry import register_method

#: src/search/args.py:59-64 (window, ev_freq via --report_freq_hessian 2, δ, factor, es_start_epoch)
ES_DEFAULTS = {"window": 5, "delta": 4, "factor": 1.3, "es_start_epoch": 10}
#: scripts/start_search.sh: awk i=0.0003; i<=0.0243; i*=3
L2_GRID = (3e-4, 9e-4, 27e-4, 81e-4, 243e-4)


def es_decision(
    epochs: Sequence[int],
    eigenvalues: Sequence[float],
    total_epochs: int,
    ev_freq: int,
    window: int = 5,
    delta: int = 4,
    factor: float = 1.3,
    es_start_epoch: int = 10,
) -> Optional[int]:
    """The DARTS-ES decision after the last eigenvalue of the series (``epochs`` 0-based, ascending, one eigenvalue
    each): the epoch whose cell the search reports when it stops now, or None (go on).  A replay of RobustDARTS
    src/utils.py ``EVLocalAvg.update`` over the series, then ``early_stop`` at its last epoch."""
    if not epochs:
        return None
    half_up = int(np.ceil(window / 2))
    ev: List[float] = []
    la: List[float] = []
    la_epoch: Dict[int, int] = {}
    start, end = 0, window
    for epoch, value in zip(epochs, eigenvalues):
        ev.append(float(value))
        if len(ev) >= half_up and epoch < total_epochs - 1:
            if len(ev) < window:
                la.append(float(np.mean(ev)))
            else:
                la.append(float(np.mean(ev[start:end])))
                start, end = start + 1, end + 1
            la_epoch[epoch] = int(epoch - int(ev_freq * np.floor(window / 2)))
        elif len(ev) < half_up:
            la_epoch[epoch] = -1
    t = epochs[-1]
    if t >= total_epochs - 1 or t not in la_epoch:  # train_search.py: no check at the last epoch
        return None
    if int(la_epoch[t] - ev_freq * delta) < es_start_epoch or len(la) < delta + 1:
        return None
    if la[-1] / la[-1 - delta] > factor:
        return int(la_epoch[t] - ev_freq * delta)
    return None


@register_method("darts-es")
class DartsES(DartsSecondOrder):
    """DARTS 2nd order stopped by the dominant α-Hessian eigenvalue (DARTS-ES); reports an earlier epoch's cell."""

    label = "DARTS-ES"
    color = "#8c564b"
    display_rank = 160
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "automl/RobustDARTS@3dec3fe src/search/train_search.py, src/utils.py (EVLocalAvg)"
    nb201_reference = False  # R-DARTS has no NB201 code
    #: the collapse hook must measure eigenvalues for this method (``hooks.collapse.every`` >= 1)
    needs_eigenvalues = True
    options = {
        **DartsSecondOrder.options,
        "early_stop": Option(
            "stop on the eigenvalue rule (false: plain DARTS-2nd with the R-DARTS settings)", bool, default=True
        ),
        "window": Option("eigenvalues per local average (reference 5)", int, minimum=1, default=5),
        "delta": Option("local averages between the compared two (reference 4)", int, minimum=1, default=4),
        "factor": Option("stop when LA(now)/LA(earlier) exceeds it (reference 1.3)", float, minimum=0, default=1.3),
        "es_start_epoch": Option(
            "no stop reporting a cell before this epoch (reference 10)", int, minimum=0, default=10
        ),
    }

    def stop_search(self, epochs: List[Dict[str, Any]], ev_freq: int) -> Optional[int]:
        """Runner hook (``SearchRun.stop_early``): after an epoch, the epoch whose cell to report if the search stops
        now, else None.  ``epochs``: the record's entries so far; ``ev_freq``: the collapse hook's ``every``."""
        from harness.diagnostics.collapse import series

        if not self.cfg.get("early_stop", True):
            return None
        s = series({"epochs": epochs})
        if not s["epochs"] or s["epochs"][-1] != epochs[-1]["epoch"]:
            return None  # no eigenvalue this epoch: the reference checks only after measuring one
        return es_decision(
            s["epochs"],
            s["eigenvalue"],
            self.epochs,
            int(ev_freq),
            int(self.cfg.get("window", 5)),
            int(self.cfg.get("delta", 4)),
            float(self.cfg.get("factor", 1.3)),
            int(self.cfg.get("es_start_epoch", 10)),
        )

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        """None: the direction is DARTS-2nd's (measured there)."""
        return None


@register_method("rdarts-l2")
class RDartsL2(DartsSecondOrder):
    """R-DARTS(L2): DARTS 2nd order with a larger weight decay on w (SGD and the unrolled virtual step)."""

    label = "R-DARTS (L2)"
    color = "#e377c2"
    display_rank = 170
    role = "extra"  # a field baseline, outside the MiLeNAS paper's claims: reported where it ran
    reference = "automl/RobustDARTS@3dec3fe scripts/start_search.sh (weight-decay grid), src/search/train_search.py"
    nb201_reference = False
    options = {
        **DartsSecondOrder.options,
        "weight_decay": Option(
            "λ_w of SGD and the virtual step, replacing optim.w_wd (reference grid 3e-4·3^k, k = 0..4)",
            float,
            minimum=0,
            default=27e-4,
        ),
    }

    @classmethod
    def display_label(cls, variant=None):
        if variant and set(variant) == {"weight_decay"}:
            return f"{cls.label} (wd={variant['weight_decay']:g})"
        return super().display_label(variant)

    def __init__(self, supernet, cfg, epochs, steps_per_epoch, speed=None):
        cfg = {**cfg, "w_wd": float(cfg.get("weight_decay", self.options["weight_decay"].default))}
        super().__init__(supernet, cfg, epochs, steps_per_epoch, speed=speed)

    @classmethod
    def alpha_directions(cls, probe, method_cfg):
        return None

"""Hypergradient error of each search method along a search (MiLeNAS paper §2.2–3).

* :mod:`.hook` — the ``hypergrad`` after-epoch hook of a search run (``harness.hooks``): its settings
  (``Option`` tables), the measurement after chosen epochs, and :func:`.hook.series` (record → series).
* :mod:`.measure` — one measurement at a frozen (w, α): every registered method's own α-direction
  (``SearchMethod.alpha_directions`` through ``DirectionProbe``) against the reference.
* :mod:`.estimators` — model-agnostic reference side on objectives ``f(w, α)``: Hessian–vector products,
  CG, inner re-training to a tolerance, the IFT reference hypergradient.
* :mod:`.figure` — the figure, drawn from a record.
* :mod:`.cli` — ``python -m harness hypergrad`` (a thin front of a search run; profiles in ``profiles/``).
The verdict is a claim of ``reports.verdicts``; tables and figures come from ``reports.hypergrad``.
"""

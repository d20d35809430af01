"""Hypergradient error of each search method along a search (MiLeNAS paper §2.2–3; issue 12).

* :mod:`.estimators` — model-agnostic estimators on objectives ``f(w, α)``: exact / finite-difference
  Hessian–vector products, CG, inner re-training to a tolerance, the IFT reference hypergradient,
  and the α-directions of DARTS 1st/2nd order, MiLeNAS and single-level.
* :mod:`.measure` — one measurement at a frozen (w, α) of an NB201 supernet.
* :mod:`.run` — the search trajectory and ``hypergrad.json``; :mod:`.figure` — the figure.
* :mod:`.profile` — ``smoke`` / ``cpu`` profiles (``profiles/*.yaml``) or any YAML path.
* :mod:`.cli` — ``python -m harness hypergrad``.
"""

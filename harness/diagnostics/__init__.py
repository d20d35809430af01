"""Diagnostics of a running search: collapse indicators (``collapse``: the ``collapse`` after-epoch hook, on by
default) and the α-Hessian eigenvalue solvers it uses (``hessian``).  docs/collapse.md."""

"""The search methods, one small adapter each; importing this package registers them."""

from baselines import darts, gdas, milenas, single_level  # noqa: F401

"""The search methods, one small adapter each; importing this package registers them."""

from baselines import (  # noqa: F401
    beta_darts,
    darts,
    drnas,
    fair_darts,
    gdas,
    idarts,
    milenas,
    pc_darts,
    rdarts,
    sdarts,
    single_level,
)

"""Benchmark-and-reproduction harness for gradient-based NAS (MiLeNAS, DARTS 1st/2nd, GDAS, single-level)."""

__version__ = "0.1.0"

"""svdyn: reduced singular-value dynamics of (deep) linear unconstrained-features models."""
__version__ = "0.1.0"

"""truenorth: chip specification (spec.py)."""

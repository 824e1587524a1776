"""loihi2: chip specification (spec.py)."""

"""cmos45: chip specification (spec.py)."""

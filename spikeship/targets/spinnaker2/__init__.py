"""spinnaker2: chip specification (spec.py)."""

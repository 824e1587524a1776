"""``spikeship tune``: the pruning budgets for a chip, as a Pareto front, on Optuna.

A study (:mod:`.study`) trains one dense run with a run's recipe on the training split
minus a validation carve, then each Optuna trial cuts that dense run to per-layer
budgets (:mod:`.space`), fine-tunes, exports and runs the Loihi emulator on the carve
(:mod:`.trial`); the storage (:mod:`.workers`) is shared by any number of worker
processes; :mod:`.front` writes the front, :mod:`.pick` picks a point by a small
grammar and retrains it on the whole training split for one test-set evaluation.
Optuna is imported through :func:`spikeship._optional.require` (extra ``tune``).
"""

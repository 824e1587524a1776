"""From nothing to a full answer in one call (``spikeship pipeline``, ``make demo``).

Stages, each the Python function behind one of the subcommands, run on the run
directory ``OUT`` (an error keeps its class, message and exit code):

1. ``train-baseline``  dense run (``--prune none``) in ``OUT/baseline``
2. ``train-pruned``    pruned run (``--prune dpap`` by default, same seed) in ``OUT``; with
   ``epochs`` unset each run trains its own default length (the dense run 20 epochs,
   DPAP's default schedule 50 with its cut at epoch 21: the setting the docs recommend);
   with ``from_dense = true`` it starts from the trained dense run (``--init-from``) and
   trains ``pruned_epochs`` (default ``epochs``) more: prune a trained network, fine-tune.
   ``qat = true`` trains both with ``--qat`` (weights on the Loihi quantiser's grid in
   every epoch), ``qat = false`` with ``--no-qat``; unset, both get the training default
   (the last 5 epochs on the grid).
3. ``export``          ``OUT/model.nir``, ``model.onnx``, ``model.net``
4. ``simulate-<t>``    one per target (reference, lava-float, lava-fixed, onnx, ...)
5. ``export-baseline``, ``simulate-baseline-<s>``, ``energy-baseline``: the dense run
   exported, simulated on the first spike source among the targets and priced, so the
   comparison says how many times fewer operations and how much less energy pruning gave
6. ``energy``          ``OUT/energy.json`` (all chips) with the vanish check
7. ``compare``         ``OUT/comparison.md`` / ``.json``: baseline vs pruned
8. ``report``          ``OUT/report.md``, ``report.html``, ``plots/*.png``

A stage is skipped when it already ran with the same inputs: ``OUT/.pipeline/<stage>.json``
records a hash of the stage's arguments and input files and the SHA-256 of each output;
the stage reruns if any of them changed or an output is missing or altered (content
checked, not existence alone). A training stage that was interrupted resumes from its
last checkpoint.

The package: :mod:`.config` (:class:`~.config.PipelineConfig`, validated on
construction), :mod:`.stages` (the stage graph and the records of what ran),
:mod:`.run` (:func:`~.run.run_pipeline`). This ``__init__`` imports nothing, so that
``import spikeship`` stays light.
"""

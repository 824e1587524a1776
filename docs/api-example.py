"""Train, export, simulate and price a pruned spiking network from Python.

    python docs/api-example.py [RUN_DIR]        (default: runs/api-example)

The same steps as ``spikeship train / export / simulate / energy``; each call returns a
result object and raises a :class:`spikeship.errors.SpikeshipError` on bad input.
"""

import sys

import spikeship

out = sys.argv[1] if len(sys.argv) > 1 else "runs/api-example"

# a small fully connected SNN on the embedded 8x8 digits, magnitude-pruned while it learns
run = spikeship.train(out, dataset="digits", model="tiny-mlp", prune="magnitude",
                      epochs=5, lr=1e-2, limit_train=400, limit_test=90, threads=1)
print(f"trained: test accuracy {run.summary['test_accuracy']:.3f}, "
      f"{100 * run.summary['pruning_rate']:.1f} % of the weights pruned")

# model.nir, model.onnx and model.net with the pruned synapses and units left out
exported = spikeship.export(out)
print("exported:", ", ".join(sorted(exported.files)))

# the deployed NIR graph on the test split, compared spike by spike with the trained net
sim = spikeship.simulate(out, "reference")
print(f"simulated: accuracy {sim.accuracy:.3f}, identical predictions "
      f"{sim.result.agreement['predictions']:.3f}")

# synaptic operations of the deployed graph, priced per chip, and the vanish check
cost = spikeship.energy(out, check_lava=False)
per_sample = cost.document["totals_per_sample"]
print(f"energy: {per_sample['ops_effective']:.0f} ops per sample (dense "
      f"{per_sample['ops_dense']:.0f}); vanish check passed: {cost.vanish_check_passed}")

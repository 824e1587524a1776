"""Tiny pruners for the trainer and checkpoint tests (registered with monkeypatch)."""

import torch

from spikeship.train.pruners.base import Pruner


class LoggingPruner(Pruner):
    """Logs every hook call; prunes hidden unit ``epoch - 1`` of tiny-mlp's layer "1" and,
    after epoch 1, the 20 synapses with the largest summed |gradient| (of other units)."""

    name = "test-logging"

    def attach(self, model, masks, layers, ann=False):
        super().attach(model, masks, layers, ann)
        self.events = ["attach"]
        self.dense_grad_seen = []      # at after_backward: a pruned weight still has a grad
        self.zero_after_step = []      # at after_batch: pruned weights are zero

    def after_backward(self):
        self.events.append("after_backward")
        w = self.model[1].weight
        self.grad_sum = w.grad.abs() + getattr(self, "grad_sum", 0)
        pruned = ~self.masks.weight["1"]
        if pruned.any():
            self.dense_grad_seen.append(bool(w.grad[pruned].abs().sum() > 0))

    def after_batch(self):
        self.events.append("after_batch")
        pruned = ~self.masks.effective("1")
        if pruned.any():
            self.zero_after_step.append(bool(self.model[1].weight[pruned].abs().sum() == 0))

    def end_epoch(self, epoch):
        self.events.append(f"end_epoch:{epoch}")
        remove = torch.zeros(self.masks.units["1"].shape, dtype=torch.bool)
        remove[epoch - 1] = True
        self.masks.prune_units("1", remove)
        if epoch == 1:
            g = self.grad_sum.clone()
            g[:2] = -1                        # rows of the units removed in epochs 1 and 2
            w_remove = torch.zeros(g.numel(), dtype=torch.bool)
            w_remove[g.flatten().topk(20).indices] = True
            self.masks.prune_weights("1", w_remove.view_as(g))
        return {"pruned_unit": epoch - 1, "as_tensor": torch.tensor([epoch, 2 * epoch])}

    def detach(self):
        self.events.append("detach")


class RandomStatePruner(Pruner):
    """Uses the global torch RNG and keeps tensor + JSON state, to test exact resume."""

    name = "test-random"

    def attach(self, model, masks, layers, ann=False):
        super().attach(model, masks, layers, ann)
        self.seen = torch.zeros(1, dtype=torch.int64)
        self.grad_sum = torch.zeros_like(model[1].weight)
        self.history = []

    def after_backward(self):
        self.grad_sum += self.model[1].weight.grad.abs()

    def after_batch(self):
        self.seen += 1

    def end_epoch(self, epoch):
        n = int(self.options.get("per_epoch", 40))
        flat = torch.randperm(self.grad_sum.numel())[:n]
        remove = torch.zeros(self.grad_sum.numel(), dtype=torch.bool)
        remove[flat] = True
        self.masks.prune_weights("1", remove.view_as(self.grad_sum))
        unit = int(torch.randint(0, self.masks.units["1"].numel(), (1,)))
        u = torch.zeros_like(self.masks.units["1"])
        u[unit] = True
        self.masks.prune_units("1", u)
        self.history.append(unit)
        return {"unit": unit}

    def state(self):
        return {"seen": self.seen, "grad_sum": self.grad_sum}, {"history": list(self.history)}

    def load_state(self, tensors, meta):
        self.seen = tensors["seen"].clone()
        self.grad_sum = tensors["grad_sum"].clone()
        self.history = list(meta["history"])


def assert_exact_resume(cfg, tmp_path):
    """Train ``cfg`` in one go and again stopped after epoch 1 and resumed; assert both
    runs prune (the same rate), with equal masks and weights. Returns the full run's
    checkpoint."""
    from spikeship.train import trainer
    from spikeship.train.checkpoint import load_checkpoint

    full = trainer.train(cfg, tmp_path / "full", progress=False, quiet=True)
    trainer.train(cfg, tmp_path / "split", stop_after=1, progress=False, quiet=True)
    split = trainer.train(cfg, tmp_path / "split", resume=True, progress=False, quiet=True)
    assert full["pruning_rate"] > 0 and split["pruning_rate"] == full["pruning_rate"]
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "split")
    for n in a.masks.layers:
        assert torch.equal(a.masks.weight[n], b.masks.weight[n])
        assert torch.equal(a.model[int(n)].weight, b.model[int(n)].weight)
    return a

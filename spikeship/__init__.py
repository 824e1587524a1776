"""spikeship: train, prune, export and deploy spiking neural networks honestly."""

__version__ = "0.1.0"

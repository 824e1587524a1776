"""One exception tree for spikeship.

Every failure a user can cause is a subclass of :class:`SpikeshipError`. The CLI
turns them into a one-line message and a non-zero exit code (no traceback unless
``--debug``). Raise them with ``from e`` so the cause is kept.
"""


class SpikeshipError(Exception):
    """Base class of every error spikeship raises on purpose."""

    exit_code = 1


class UsageError(SpikeshipError):
    """The command line asks for something that does not exist: a misspelled choice
    (``--target``, ``--dataset``, ...), a missing argument (exit code 2, like click)."""

    exit_code = 2


class MissingDependencyError(SpikeshipError):
    """An optional heavy dependency (Lava, onnxruntime, norse, ...) is not installed."""


class ConfigError(SpikeshipError):
    """A configuration value is unknown, malformed or out of range."""


class RemovedOptionError(ConfigError):
    """An option (or option value) that spikeship once had and has removed; the message
    names it."""


class OptionError(UsageError, ConfigError):
    """A simulator option (``--option KEY=VALUE``) the simulator does not know, or a value
    its typed schema refuses (exit code 2: a usage error)."""


class DatasetError(SpikeshipError):
    """A dataset directory is missing or its files are malformed."""


class CheckpointError(SpikeshipError):
    """A checkpoint is missing, corrupt, or does not fit the model."""


class ObsoleteCheckpointError(CheckpointError):
    """A checkpoint written by an older spikeship that this one can no longer resume: it
    uses a removed option or lacks a field whose meaning has changed since."""


class MaskError(CheckpointError):
    """Pruning masks do not fit the weights they are meant for."""


class RunDirError(SpikeshipError):
    """A run directory is missing, not writable, or of an unsupported format."""


class GraphError(SpikeshipError):
    """A NIR/ONNX/netx graph is corrupt, inconsistent or cannot be used."""


class UnsupportedNodeError(GraphError):
    """A graph node type that spikeship cannot map."""


class ConventionError(GraphError):
    """A producer's meaning (``--convention``) that no spikeship simulator can express;
    the message names the node, the producer and the reason."""


class ExportError(SpikeshipError):
    """A model cannot be exported to the requested format."""


class SimulationError(SpikeshipError):
    """A simulation failed (including errors raised inside Lava's processes)."""


class SimulationTimeoutError(SimulationError):
    """A simulation did not finish within its time limit."""


class RuleError(SpikeshipError):
    """A hardware design rule is violated (names the rule and the layer)."""


class VanishCheckError(SpikeshipError):
    """Pruned connections or units were found in a deployed artifact."""


class DistributedError(SpikeshipError):
    """A data-parallel run failed across processes: a peer died or hung past the
    process-group timeout, the rendezvous failed, or a worker exited with an error."""


class ReplicaMismatchError(DistributedError):
    """Data-parallel workers disagree (their pruning masks hash differently)."""


class RunLockedError(RunDirError):
    """Another process is writing the run directory (the message names the holder)."""

    exit_code = 75   # EX_TEMPFAIL of sysexits.h: try again when the other writer is done

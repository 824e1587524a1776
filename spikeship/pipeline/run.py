"""Run the pipeline: every stage of :func:`~spikeship.pipeline.stages.plan` in order,
skipping those that already ran with the same inputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from spikeship.errors import SpikeshipError
from spikeship.io import ensure_writable_dir, write_json_atomic
from spikeship.pipeline.config import PipelineConfig
from spikeship.pipeline.stages import StageRecorder, plan
from spikeship.runlock import PIPELINE, writes_run_dir


def _silent(line: str) -> None:
    """The default ``echo``: say nothing."""


@writes_run_dir(lambda a: a["cfg"].out, "pipeline", create=True, kind=PIPELINE)
def run_pipeline(cfg: PipelineConfig, echo: Callable[[str], None] | None = None
                 ) -> list[tuple[str, str, float]]:
    """Run (or skip) every stage; return (stage, "ran"|"skipped", seconds) per stage.
    ``echo`` hears each stage start and end (silent without).

    Each stage is a Python call; an error keeps its class, message and exit code."""
    echo = echo or _silent
    out = ensure_writable_dir(cfg.out)
    write_json_atomic(out / "pipeline.json", cfg.to_json())
    recorder = StageRecorder(out)
    log = []
    stages = plan(cfg)
    for i, stage in enumerate(stages, start=1):
        head = f"[{i}/{len(stages)}] {stage.name}"
        if recorder.is_done(stage):
            echo(f"{head}: up to date, skipped")
            log.append((stage.name, "skipped", 0.0))
            continue
        extra = {}
        if stage.name.startswith("train") and (Path(stage.kwargs["out"]) / "checkpoint").exists():
            extra["resume"] = True
        echo(f"{head}: {stage.describe()}" + (" (resuming)" if extra else ""))
        t0 = time.perf_counter()
        try:
            stage.run(**extra)
        except SpikeshipError:
            echo(f"{head}: failed; fix it and re-run: finished stages are skipped")
            raise
        dt = time.perf_counter() - t0
        recorder.record(stage, dt)
        echo(f"{head}: done in {dt:.1f} s")
        log.append((stage.name, "ran", dt))
    return log

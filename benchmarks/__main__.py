"""``python -m benchmarks`` (``make bench``): every benchmark on its own defaults, one after
the other, sharing the scratch folder's runs; exit 1 when any failed. ``--out`` and
``--results`` are passed on to each. Without ``--results`` the scratch results are
rendered too, into ``OUT/docs/`` (the project's pages: ``make results-pages``)."""

import os
import subprocess
import sys
import time

from benchmarks import common, render

#: cheapest first; the runs the later ones need are made by the first that needs them
BENCHMARKS = ("bench_dpap_epoch", "bench_train_throughput", "bench_distributed",
              "bench_prune_energy", "bench_timesteps", "bench_onnx_latency", "bench_loihi_emu",
              "bench_netx_pilotnet")


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__doc__)
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(BENCHMARKS)
    passed = ["--out", str(args.out)] + (["--results"] if args.results else [])
    os.environ.setdefault("OMP_NUM_THREADS", "1")     # shared cores: no oversubscription
    failed = []
    for name in names:
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *passed]).returncode
        print(f"== {name}: exit {rc}, {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if not args.results and (args.out / "results").is_dir():
        render.render(args.out / "results", args.out / "docs", None)
        print(f"rendered {common.relative(str(args.out / 'docs'))}/", flush=True)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Convert, once, the README's generated blocks of the current defaults into results/*.json.

These runs (full seed sweeps, MNIST) take hours to remake on a 2-core machine, so their
figures are kept as they were written: each block's own command (paths made relative),
commit, date and machine, marked ``"imported_from": "README.md@<commit>"``. Superseded
blocks (earlier defaults, float-only training, screens) are not results: they are listed
on ``docs/results/experiment-log.md``, one line each, with the commit to read them at.

    python -m benchmarks.import_readme            # README.md as of IMPORT_COMMIT
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from benchmarks import common, schema

IMPORT_COMMIT = "53b6326"

PRUNE_DESC = ("Dense and pruned run per seed through export, the Loihi emulator (whole test "
              "split) and energy; ratio = dense / pruned effective synaptic operations "
              "(first-layer MACs included), from structure x from rates.")
#: README block -> (result name, topic, title, extra description)
CURRENT = {
    "prune-table-chip-qat5": ("prune-digits-chip", "pruning",
                              "digits, seeds 0-9: dense vs DPAP's default (preset=chip)", ""),
    "prune-table-chip-qat5-holdout": ("prune-digits-chip-seeds10-19", "pruning",
                                      "digits, seeds 10-19: dense vs DPAP's default", ""),
    "prune-table-chip-qat5-holdout2": ("prune-digits-chip-seeds20-29", "pruning",
                                       "digits, seeds 20-29: dense vs DPAP's default", ""),
    "prune-table-chip-qat5-holdout3": ("prune-digits-chip-seeds30-39", "pruning",
                                       "digits, seeds 30-39: dense vs DPAP's default", ""),
    "prune-table-digits-deep": ("prune-digits-deep", "pruning",
                                "digits, seeds 0-9: dense vs preset=deep",
                                " preset=deep is meant for MNIST-sized training sets."),
    "prune-table-mnist-qat5": ("prune-mnist-chip", "pruning",
                               "MNIST (6,000 training samples), seeds 0-4: dense vs DPAP's "
                               "default", ""),
    "prune-table-mnist-qat5T4": ("prune-mnist-chip-pruned-t4", "pruning",
                                 "MNIST (6,000 training samples), seeds 0-2: dense at T = 8 vs "
                                 "DPAP's default at T = 4", ""),
    "prune-table-mnist-moonBr": ("prune-mnist-deep", "pruning",
                                 "MNIST (6,000 training samples), seeds 0-2: dense vs the "
                                 "preset=deep cut", " The command names preset=deep's budgets."),
    "prune-table-mnist-moonBrT4": ("prune-mnist-deep-pruned-t4", "pruning",
                                   "MNIST (6,000 training samples), seeds 0-8: dense at T = 8 "
                                   "vs preset=deep at T = 4", ""),
    "prune-table-mnist-moonBrT4-vsT4": ("prune-mnist-deep-t4", "pruning",
                                        "MNIST (6,000 training samples), seeds 0-8: dense vs "
                                        "preset=deep, both at T = 4", ""),
    "onnx-latency-chip": ("onnx-latency-digits-s0", "onnx-latency",
                          "digits, seed 0: ONNX Runtime latency, dense vs DPAP's default", ""),
    "onnx-latency-mnist-chip": ("onnx-latency-mnist-s0", "onnx-latency",
                                "MNIST (6,000 training samples), seed 0: ONNX Runtime latency, "
                                "dense vs DPAP's default cut",
                                " Both runs trained in float (no quantisation-aware epochs); "
                                "the graphs' shapes are the default cut's."),
    "prune-table-timesteps": ("timesteps-digits", "timesteps",
                              "digits, seeds 0-2: time steps 4, 8, 16, dense and DPAP's default",
                              ""),
}
ONNX_DESC = ("MACs per sample and call of the graph (one time step of the step graph); node "
             "alone: the layer's Conv / Gemm by itself in ONNX Runtime. Speed-up = median of "
             "the paired per-round ratios dense / pruned.")
TIMESTEPS_DESC = ("Per T and kind, means over seeds; ratios to dense at T = 8. EDP = Loihi "
                  "energy per sample x steps; model time = T x the exported graph's dt.")

#: superseded blocks: (block, what it tried, what it showed)
SUPERSEDED = [
    ("numbers", "dense vs DPAP's paper schedule (preset=paper), float training, digits 30 "
     "epochs and MNIST 20 epochs", "the paper's schedule prunes weights but removes no conv "
     "channel in a short run, so it saves few deployed operations"),
    ("prune-table-chip", "DPAP's default cut trained in float (no quantisation-aware epochs), "
     "seeds 0-9", "the same accuracy within the noise, but the emulator strayed up to about "
     "1 pt from float: the reason for the last-5-epochs quantisation-aware default"),
    ("prune-table-chip-holdout", "as prune-table-chip, seeds 10-19", "as above"),
    ("prune-table-chip-holdout2", "as prune-table-chip, seeds 20-29", "as above"),
    ("prune-table-chip-holdout3", "as prune-table-chip, seeds 30-39", "as above"),
    ("prune-table-chip-qat", "DPAP's default cut, quantisation-aware in every epoch, seeds 0-9",
     "no accuracy gain over the last-5-epochs variant at a higher training cost"),
    ("prune-table-chip-qat-holdout", "as prune-table-chip-qat, seeds 10-19", "as above"),
    ("prune-table-chip-qat-holdout2", "as prune-table-chip-qat, seeds 20-29", "as above"),
    ("prune-table-chip-prev", "the previous default: conv3's channels ranked by DPAP's survival "
     "value instead of the filters' L1 norm, seeds 0-29", "it lost more accuracy against dense "
     "than the L1 ranking on the same seeds, which then became the default"),
    ("prune-table", "preset=channels, an earlier in-run channel schedule, seeds 0-9",
     "about half the operations saved of today's default, at a larger accuracy cost"),
    ("prune-table-from-dense-qat", "prune the trained dense network with L1 filters and "
     "fine-tune it (the recipe of Li et al. 2017, https://arxiv.org/abs/1608.08710), seeds 0-9",
     "it met the operations goal on digits; DPAP's one-run schedule later matched it"),
    ("prune-table-from-dense-qat-holdout", "as prune-table-from-dense-qat, seeds 10-19",
     "held-out seeds confirmed it"),
    ("prune-table-from-dense-qat-e30", "the same recipe after a 30-epoch dense run",
     "a longer dense run did not change the trade-off"),
    ("prune-table-from-dense", "the same recipe trained in float", "the emulator strayed "
     "further from float without quantisation-aware training"),
    ("prune-table-mnist", "the from-dense L1 recipe on full MNIST, seeds 0-2",
     "a small, significant accuracy loss at several times fewer operations"),
    ("prune-table-mnist-dpap", "DPAP's earlier budgets cut once into the trained dense MNIST "
     "runs", "fewer operations saved than the L1 recipe, smaller accuracy loss"),
    ("prune-table-mnist-chip", "an earlier default's budgets (conv0 cut too) on 6,000 MNIST "
     "samples", "no accuracy loss, about three times fewer operations"),
    ("prune-table-mnist-chip-new", "the previous default (survival ranking) on 6,000 MNIST "
     "samples, seeds 0-1", "stopped when the default changed"),
    ("prune-table-mnist-l1", "today's cut trained in float on 6,000 MNIST samples",
     "no accuracy loss; superseded by the quantisation-aware default"),
    ("prune-table-mnist-p5", "the from-dense recipe with 5 fine-tuning epochs on MNIST",
     "more operations saved at a larger accuracy cost than 10 epochs"),
    ("prune-table-mnist-moonA", "a deeper one-shot cut A into the trained dense MNIST run",
     "far fewer operations, but well over the accuracy budget"),
    ("prune-table-mnist-moonB", "cut B one-shot into the trained dense MNIST run",
     "lost more accuracy than the same cut in DPAP's schedule"),
    ("prune-table-mnist-moonAr", "cut A in DPAP's 50-epoch schedule", "too deep: the accuracy "
     "loss exceeded the budget; cut B became preset=deep"),
    ("onnx-latency-digits", "ONNX Runtime latency of the from-dense recipe's digits runs",
     "the speed-up stayed well below the MAC ratio"),
    ("onnx-latency-mnist", "ONNX Runtime latency of the from-dense recipe's MNIST runs",
     "as on digits: the conv kernels do not scale with the pruned shapes"),
]

NUM = r"[-+]?[\d,]*\.?\d+"


def num(text: str):
    """``"1,234"`` -> 1234, ``"-0.89"`` -> -0.89, ``"—"``/``"?"`` -> None."""
    t = text.strip().replace(",", "").rstrip("x%").strip()
    if t in ("—", "?", "", "-", "inf"):
        return None
    return int(t) if re.fullmatch(r"[-+]?\d+", t) else float(t)


def blocks(readme: str) -> dict[str, str]:
    """Every generated block of ``readme``: name -> text between its markers."""
    return {m.group(1): m.group(2) for m in re.finditer(
        r"<!-- ([\w.-]+):begin -->\n(.*?)<!-- \1:end -->", readme, re.S)}


def provenance(block: str, commit_of_readme: str) -> dict:
    """command, commit, date, machine and versions as the block's own lines write them."""
    mline = re.search(r"^Machine: (.*?), (\d+) cores; (.*); (\d{4}-\d\d-\d\d \d\d:\d\d UTC)\.",
                      block, re.M)
    cmd = re.search(r"^Command: `(.*)`", block, re.M).group(1)
    vers = {}
    commit = None
    for part in mline.group(3).split(", "):
        m = re.fullmatch(r"spikeship(?: ([\d.]+))? \((\w+)\)", part)
        if m:
            commit = m.group(2)
            if m.group(1):
                vers["spikeship"] = m.group(1)
            continue
        name, _, ver = part.rpartition(" ")
        vers[name.lower()] = ver
    # the runs lived in a folder beside the checkout: its prefix goes, the rest stays
    return {"command": re.sub(r"(?<![\w.])/work/", "", cmd),
            "commit": commit, "date": mline.group(4),
            "machine": {"cpu": mline.group(1), "cores": int(mline.group(2)), "ram_gb": None},
            "versions": vers, "imported_from": f"README.md@{commit_of_readme}"}


def table(block: str) -> list[list[str]]:
    """The cells of the first markdown table of ``block`` (header and rule left out)."""
    lines = [ln for ln in block.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def prune_row(c: list[str]) -> dict:
    diff = re.fullmatch(rf"({NUM})(?: \[({NUM}), ({NUM})\])?", c[3])
    units = {}
    for key, cell in (("conv0", c[6]), ("conv3", c[7])):
        kept, total = cell.split("/")
        units[f"{key}_kept"], units[f"{key}_total"] = int(kept), int(total)
    fc = re.fullmatch(r"(\d+)/(\d+) \((?:(\d+); )?(\d+) %\)", c[8])
    return {"seed": int(c[0]), "float_dense": num(c[1]), "float_pruned": num(c[2]),
            "diff_pt": num(diff.group(1)), "diff_lo": num(diff.group(2) or ""),
            "diff_hi": num(diff.group(3) or ""), "emu_dense": num(c[4]), "emu_pruned": num(c[5]),
            **units, "fc7_kept": int(fc.group(1)), "fc7_total": int(fc.group(2)),
            "fc7_deployed": num(fc.group(3) or ""), "fc7_synapses_kept_pct": num(fc.group(4)),
            "pruned_pct": num(c[9]), "synops_dense": num(c[10]), "synops_pruned": num(c[11]),
            "ratio": num(c[12]), "from_structure": num(c[13]), "from_rates": num(c[14]),
            "energy_uj_dense": num(c[15]), "energy_uj_pruned": num(c[16]),
            "loihi_cores_dense": num(c[17]), "loihi_cores_pruned": num(c[18]),
            "loihi2_cores_dense": num(c[19]), "loihi2_cores_pruned": num(c[20]),
            "energy_exit": num(c[21])}


def _interval(mean: float, se: float | None, n: int) -> dict:
    """The block's mean and SE with the 95 % t-interval they imply (rounded as written)."""
    d = common.interval(mean, se, n)
    return {**d, **{k: round(d[k], 4) for k in ("lo", "hi") if d[k] is not None}}


def prune_summary(block: str, rows: list[dict]) -> tuple[dict, list[str]]:
    """The block's summary lines as numbers (and the prose ones as notes)."""
    se = r"\(SE (n/a, one seed|[\d.]+)\)"
    m = re.search(rf"seeds: (\d+); .*float: ({NUM}) pt {se}; Loihi emulator: ({NUM}) pt {se}",
                  block)
    n = int(m.group(1))
    sev = [None if "n/a" in g else float(g) for g in (m.group(3), m.group(5))]
    r = re.search(rf"ratio dense/pruned: min ({NUM}), mean ({NUM}); Loihi energy ratio: min "
                  rf"({NUM}), mean ({NUM})", block)
    gap = re.search(rf"largest \|emulator - float\| over all runs: ({NUM}) pt", block)
    out = {"seeds": n, "diff_float_pt": _interval(num(m.group(2)), sev[0], n),
           "diff_emu_pt": _interval(num(m.group(4)), sev[1], n),
           "float_dense_pct": common.mean_interval([x["float_dense"] for x in rows]),
           "float_pruned_pct": common.mean_interval([x["float_pruned"] for x in rows]),
           "ratio": {"min": num(r.group(1)), "mean": num(r.group(2))},
           "energy_ratio": {"min": num(r.group(3)), "mean": num(r.group(4))},
           "max_emu_float_gap_pt": num(gap.group(1))}
    ep = re.search(r"epochs \(from the runs' summaries\): dense (\d+), pruned (\d+); training "
                   r"samples (\d+)", block)
    if ep:
        out.update(epochs_dense=int(ep.group(1)), epochs_pruned=int(ep.group(2)),
                   samples_train=int(ep.group(3)))
    ts = re.search(r"time steps dense / pruned: (\d+) / (\d+)", block)
    out["timesteps_dense"], out["timesteps_pruned"] = ((int(ts.group(1)), int(ts.group(2)))
                                                       if ts else (8, 8))
    pooled = re.search(rf"pooled over the \d+ seeds' ([\d,]+) sample pairs: ({NUM}) pt, 95 % "
                       rf"paired interval \[({NUM}), ({NUM})\]", block)
    if pooled:
        out["pooled_diff_pt"] = {"mean": num(pooled.group(2)), "lo": num(pooled.group(3)),
                                 "hi": num(pooled.group(4)), "pairs": num(pooled.group(1))}
    notes = [ln for ln in block.splitlines()
             if ln.startswith(("cores dense/pruned", "every seed prunes", "time steps dense"))]
    return out, notes


def onnx_doc(block: str) -> tuple[list[dict], dict, list[str]]:
    rows = []
    for c in table(block):
        if c[0] == "total":
            continue
        alone = re.fullmatch(rf"({NUM}) / ({NUM})", c[8])
        rows.append({"layer": c[0], "op": c[1], "weight_dense": c[2], "weight_pruned": c[3],
                     "zeros_multiplied_pruned_pct": num(c[4]), "macs_dense": num(c[5]),
                     "macs_pruned": num(c[6]), "mac_ratio": num(c[7]),
                     "alone_dense_us": num(alone.group(1)) if alone else None,
                     "alone_pruned_us": num(alone.group(2)) if alone else None,
                     "alone_speedup": num(c[9])})

    def g(pattern: str, *groups: int):
        m = re.search(pattern, block)
        return [num(m.group(i)) for i in groups] if m else [None] * len(groups)

    ort, batch, mode, steps, rounds, calls = re.search(
        r"ONNX Runtime ([\d.]+), batch (\d+), .*?thread, (\w+) graph, (\d+) step\(s\) per "
        r"inference, (\d+) interleaved rounds x (\d+) inferences", block).groups()
    ld = g(rf"dense +({NUM}) ms per inference \(IQR ({NUM})\)", 1, 2)
    lp = g(rf"pruned +({NUM}) ms per inference \(IQR ({NUM})\)", 1, 2)
    sp = g(rf"speed-up \(median of paired per-round ratios\) ({NUM})x \(IQR ({NUM})-({NUM})\); "
           rf"ratio of medians ({NUM})x", 1, 2, 3, 4)
    ch = g(rf"no LIF arithmetic\) ({NUM})x \(IQR ({NUM})-({NUM});", 1, 2, 3)
    mac, req = g(rf"MAC ratio ({NUM})x; required >= 0\.8 x {NUM} = ({NUM})x", 1, 2)
    summary = {
        "latency_ms_dense": {"median": ld[0], "iqr": ld[1]},
        "latency_ms_pruned": {"median": lp[0], "iqr": lp[1]},
        "speedup": {"median": sp[0], "q25": sp[1], "q75": sp[2]},
        "synapse_chain_speedup": {"median": ch[0], "q25": ch[1], "q75": ch[2]},
        "mac_ratio": mac, "required_speedup": req,
        "criterion_held": ": HELD" in block,
        "structure_ok": "structure check (pruned units physically absent): passed" in block,
        "speedup_of_medians": sp[3],
        "elementwise_ratio": g(rf"= ({NUM})x\n", 1)[0],
        "flop_ratio_all_ops": g(rf"elementwise outputs\) ({NUM})x", 1)[0],
        "mac_ratio_block_padded": g(rf"on this CPU\) ({NUM})x", 1)[0],
        "nchwc_block": g(r"NCHWc block \((\d+) on this CPU\)", 1)[0],
        "neuron_ratio": g(rf"neurons [\d,]+ / [\d,]+ = ({NUM})x", 1)[0],
        "speedup_estimate_any_lif": g(rf"not a strict bound\): ({NUM})x", 1)[0],
        "speedup_cap_synapse_nodes": g(rf"cap the speed-up at about ({NUM})x", 1)[0],
        "batch": int(batch), "rounds": int(rounds), "calls_per_round": int(calls),
        "mode": mode, "steps_per_inference": int(steps), "onnxruntime": ort}
    notes = [ln.strip() for ln in block.splitlines() if ln.strip().startswith("structure ")]
    return rows, summary, notes


def timesteps_doc(block: str) -> tuple[list[dict], dict]:
    rows, summary = [], {}
    for c in table(block):
        fm, fse = re.fullmatch(rf"({NUM}) \(({NUM})\)", c[3]).groups()
        em, ese = re.fullmatch(rf"({NUM}) \(({NUM})\)", c[4]).groups()
        t, kind, n = int(c[0]), c[1], int(c[2])
        row = {"timesteps": t, "kind": kind, "seeds": n, "float_pct": num(fm),
               "float_se_pt": num(fse), "emu_pct": num(em), "emu_se_pt": num(ese),
               "pruned_pct": num(c[5]), "synops": num(c[6]), "energy_uj": num(c[7]),
               "latency_steps": num(c[8]), "latency_model_s": num(c[9]),
               "edp_uj_steps": num(c[10]), "synops_vs_ref": num(c[11]),
               "energy_uj_vs_ref": num(c[12]), "edp_uj_steps_vs_ref": num(c[13]),
               "float_vs_ref_pt": num(c[14])}
        rows.append(row)
        key = f"T{t}-{kind}"
        summary[f"{key}-float_pct"] = _interval(row["float_pct"], row["float_se_pt"], n)
        summary[f"{key}-emu_pct"] = _interval(row["emu_pct"], row["emu_se_pt"], n)
        summary[f"{key}-means"] = {k: row[k] for k in (
            "synops", "energy_uj", "edp_uj_steps", "synops_vs_ref", "energy_uj_vs_ref",
            "edp_uj_steps_vs_ref", "pruned_pct", "latency_steps", "seeds")}
    return rows, summary


def convert(readme: str, commit: str) -> list[dict]:
    """The result documents of the current-default blocks of ``readme`` (at ``commit``)."""
    found = blocks(readme)
    docs = []
    for block_name, (name, topic, title, extra) in CURRENT.items():
        block = found[block_name]
        doc = {"schema": schema.VERSION, "name": name, "topic": topic, "title": title,
               **provenance(block, commit)}
        notes = []
        if topic == "pruning":
            rows = [prune_row(c) for c in table(block)]
            summary, notes = prune_summary(block, rows)
            doc.update(benchmark="bench_prune_energy", description=PRUNE_DESC + extra)
        elif topic == "onnx-latency":
            rows, summary, notes = onnx_doc(block)
            doc.update(benchmark="bench_onnx_latency", description=ONNX_DESC + extra)
        else:
            rows, summary = timesteps_doc(block)
            notes = ["The README block held the summary per (T, kind), not per seed: the "
                     "rows are those means."]
            doc.update(benchmark="bench_timesteps", description=TIMESTEPS_DESC + extra)
        doc.update(rows=rows, summary=summary)
        if notes:
            doc["notes"] = notes
        docs.append(schema.validate(doc, name))
    return docs


def experiment_log(readme: str, commit: str, date: str) -> str:
    """The experiment log page: one line per superseded block."""
    found = blocks(readme)
    lines = ["# Experiment log", "",
             f"_Listed {date}._ Experiments that chose today's defaults, superseded by "
             f"them; they are not results of the current software. Each table can be read in "
             f"`README.md` at commit `{commit}` (`git show {commit}:README.md`), in the block "
             f"named below.", ""]
    for block, tried, showed in SUPERSEDED:
        if block not in found:
            raise SystemExit(f"README.md@{commit} has no block {block!r}")
        m = re.search(r"\d{4}-\d\d-\d\d", found[block])
        when = m.group(0) if m else "undated"
        lines.append(f"- {when}, `{block}`: {tried}. Showed: {showed}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--commit", default=IMPORT_COMMIT, help="README.md at this commit")
    ap.add_argument("--results", type=Path, default=common.ROOT / "results")
    ap.add_argument("--log", type=Path,
                    default=common.ROOT / "docs" / "results" / "experiment-log.md")
    args = ap.parse_args(argv)
    readme = subprocess.run(["git", "-C", str(common.ROOT), "show", f"{args.commit}:README.md"],
                            capture_output=True, text=True, check=True).stdout
    for doc in convert(readme, args.commit):
        schema.write(args.results / f"{doc['name']}.json", doc)
        print(f"wrote {doc['name']}.json")
    date = subprocess.run(["git", "-C", str(common.ROOT), "log", "-1", "--format=%ad",
                           "--date=short", args.commit], capture_output=True, text=True,
                          check=True).stdout.strip()
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text(experiment_log(readme, args.commit, date), encoding="utf-8")
    print(f"wrote {args.log.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

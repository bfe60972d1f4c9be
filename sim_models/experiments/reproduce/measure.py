"""The numbers the verdicts need, from the stored probe and analysis results of `sim reproduce`.

Units as verdicts.py wants them: accuracies and δ in percent, concentration as the top-10 % mass.
Spread: over **training seeds** (one run per seed); each run's number is the mean over its probe
seeds. Random init: the untrained starting point of every SIM run (its own train.seed), probed by the
same protocol. Table 2 uses the last module (the GRU: "average-pooled output of the final autoregressive
module", paper §4.2). Table 3 and Fig. 2 are judged only on modules where SIM's stage is a probabilistic
conv module (the paper's g_enc^m; the GRU is deterministic and in neither). Table 3: δ on the decoded
**waveform** (the authors' code compares decoded outputs) at the paper's *fraction* of the width: N = 8 of
512 dims is 1/64, so at width C, N = max(1, round(C / 64)) (1 of 48); Fig. 2: the vowel probe's top-10 %
|weight| mass on raw features (the scale-aware mass, |w| · the feature's std, is reported beside it, not judged).
Both are measured on the analyses' main representation (samples, the SIM authors' measurement), μ as a
robustness row. These rules were fixed before any run on the paper's recordings.
"""
from __future__ import annotations

from sim_models.analysis.entanglement import TABLE3_N

__all__ = ["measurements", "PAPER_WIDTH", "DELTA_SPACE", "table3_n"]

PAPER_WIDTH = 512
DELTA_SPACE = "waveform"


def table3_n(width: int) -> int:
    """The N that is the paper's fraction TABLE3_N / PAPER_WIDTH (1/64) of ``width`` dims: max(1, round(width / 64))."""
    return max(1, round(width * TABLE3_N / PAPER_WIDTH))


def _last(rows: list) -> dict:
    return rows[-1]


def _module(result: dict, m: int, representation: str | None) -> dict:
    """Module m's condensed analysis numbers: the main ones, or those measured on ``representation``."""
    row = result["modules"][m]
    if representation is None:
        return row
    return {**row, **row["by_representation"][representation]}


def measurements(budget, seeds: int, probes: dict, analyses: dict, protocol: str,
                 representation: str | None = None) -> dict:
    """probes: {(method, seed, protocol): probe step result}; analyses: {(method, seed): analyse step result}.
    representation: None = the analyses' main numbers (their ``representation``); "sample" / "mean" = the numbers
    measured on that representation (``by_representation``; deterministic modules: one and the same).
    Returns all_verdicts()'s input: {"table2": {method: {task: [per-seed %]}}, "table3": {...}, "fig2": {...}}."""
    t2 = {}
    for method in budget.methods:
        rows = [_last(probes[(method, s, protocol)]["modules"]) for s in range(seeds) if (method, s, protocol) in probes]
        if rows and all(r["vowel"] is not None and r["syllable"] is not None for r in rows):
            t2[method] = {task: [100 * r[task] for r in rows] for task in ("vowel", "syllable")}
    rnd = [_last(probes[("SIM", s, protocol)]["modules"]) for s in range(seeds) if ("SIM", s, protocol) in probes]
    if rnd:
        t2["random"] = {task: [100 * r[f"random_init_{task}"] for r in rnd] for task in ("vowel", "syllable")}
    t3, f2 = {}, {}
    sim = [analyses[k] for k in sorted(analyses) if k[0] == "SIM"]
    if sim:
        n_mod = len(sim[0]["modules"])
        for m in range(n_mod):
            if not sim[0]["modules"][m].get("probabilistic"):
                continue  # Table 3 and Fig. 2 are about SIM's probabilistic conv modules
            row3, row2 = {}, {}
            width = sim[0]["modules"][m]["width"]
            n_dims = table3_n(width)
            for method in ("SIM", "GIM", "CPC"):
                res = [_module(analyses[k], m, representation) for k in sorted(analyses) if k[0] == method]
                if not res:
                    continue
                d = []
                for r in res:
                    ns = r["delta"][DELTA_SPACE]["ns"]
                    if n_dims in ns:
                        d.append(100 * r["delta"][DELTA_SPACE]["delta"][ns.index(n_dims)])
                if d and width > n_dims:
                    row3[method] = d
                row2[method] = [r["top10_mass"] for r in res]
            if "SIM" in row3 and len(row3) > 1:
                t3[m + 1] = {"n_dims": n_dims, "width": width, "paper_n": TABLE3_N, **row3}
            if "SIM" in row2 and len(row2) > 1:
                f2[m + 1] = row2
    return {"table2": t2, "table3": t3, "fig2": f2}

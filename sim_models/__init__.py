"""sim_models: the greedy training stack (Smooth InfoMax, GIM, CPC) on top of sim_kernels' public loss API.

    sim data  --out data/syllables                      # espeak-ng syllable words (needs espeak-ng)
    sim train --config tiny --data data/syllables --out runs/tiny [--epochs E] [--resume] [train.lr=1e-3 ...]
    sim eval  --run runs/tiny                           # linear probes -> runs/tiny/eval.json, table
    sim demo  --out runs/demo                           # all three with the demo's defaults

One job per folder, imports pointing down (docs/architecture.md): util, config, data, model, rundir, training,
evaluation, analysis, report, experiments, cli.
"""

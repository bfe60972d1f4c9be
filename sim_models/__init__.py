"""sim_models: the greedy-module training stack (Smooth InfoMax, GIM, CPC) on top of sim_kernels.

    sim data  --out data/syllables                      # espeak-ng syllable words (needs espeak-ng)
    sim train --config tiny --data data/syllables --out runs/tiny [--epochs E] [--resume] [train.lr=1e-3 ...]
    sim eval  --run runs/tiny --data data/syllables     # linear probes -> runs/tiny/eval.json, table
    python -m sim_models.cli demo --out runs/demo       # all three with the demo's defaults

Files: config.py (dataclasses, named configs), encoder_spec.py (a module = a list of conv / max-pool layers
+ heads; the old flat format), modules.py (conv / GRU modules), architectures.py (GreedyModel, gradient
isolation, layer-based stage names), supervised.py (the supervised baseline), trainer.py (parallel /
sequential training, validation loss per epoch, exact resume),
checkpoint.py (atomic save, weights_only load), run_log.py (CSV / JSONL / TensorBoard),
data/ (espeak-ng binding, synthesiser, audio datasets), evaluation/ (probes, report), cli.py.
Only the public loss API of sim_kernels is used (SmoothInfoNCELoss).
"""

"""`sim reproduce`: the SIM paper's comparison (SIM vs GIM vs CPC vs supervised vs random init) as one
resumable list of steps, ending in one report with per-claim verdicts. See docs/reproduce.md.

    budgets.py   tiny | cpu | paper: what is trained, for how long, on how many words and seeds
    steps.py     the step runner: one atomic result file per step, skip what is done, a kill hook for tests
    pipeline.py  the step list (data, β search, training, probes, analyses, verdicts, report)
    measure.py   eval / analysis files -> the measurements verdicts.all_verdicts() takes

The page is rendered by sim_models/report/reproduce.py (OUT/report.md and OUT/report.html); the sub-command is
sim_models/cli/reproduce.py.
"""

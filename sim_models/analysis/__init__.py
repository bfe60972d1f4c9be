"""Numbers and figures from a loaded run (the SIM paper's §4.3, the V-GIM thesis' §4.4), and the claims and
verdict rules that read them. Pages are rendered in sim_models/report/; see docs/analysis.md.

* run_analysis.py                     every analysis of one run -> RUN_DIR/report/analysis.json + figures
* registry.py                         the run-level analyses registered by name (one file + one registration)
* decoders.py / decoder_training.py   one decoder per stage (mirrored transposed convs) on frozen representations
* traversal.py / interpolation.py     latent traversal and decoded interpolation (PNG + wav)
* entanglement.py                     the entanglement metric δ (Table 3)
* concentration.py                    bias-free vowel probe and its weight histogram (Fig. 2)
* tsne.py                             t-SNE of syllable representations coloured by vowel
* verdicts.py                         the paper's claims, their rules and verdicts (paper_tables.json)

Importing this package does not import matplotlib or scikit-learn.
"""

"""Interpretability and analysis of trained runs (the SIM paper's §4.3, the V-GIM thesis' §4.4).

* decoders.py / decoder_training.py  one decoder per module (mirrored transposed convs), trained on frozen
                                      representations with a waveform-MSE and/or log-mel-MSE loss
* traversal.py                        latent traversal of one dimension over [−2.68, 2.68]
* interpolation.py                    decoded interpolation between two utterances (PNG + wav)
* entanglement.py                     the entanglement metric δ (Table 3)
* concentration.py                    bias-free vowel probe and its weight histogram (Fig. 2)
* tsne.py                             t-SNE of syllable representations coloured by vowel
* run_analysis.py / report_markdown.py / report_cli.py   `sim report RUN_DIR [RUN_DIR ...]`

See docs/analysis.md. Importing this package does not import matplotlib or scikit-learn.
"""
from .decoders import DecoderConfig, ModuleDecoder, build_decoders, decoder_layer_plan
from .entanglement import TABLE3_NS, entanglement_delta, swap_dims
from .representations import encode_frames, pooled_features
from .runs import load_run

__all__ = ["DecoderConfig", "ModuleDecoder", "build_decoders", "decoder_layer_plan", "TABLE3_NS", "entanglement_delta",
           "swap_dims", "encode_frames", "pooled_features", "load_run"]

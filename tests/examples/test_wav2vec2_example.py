"""examples/wav2vec2_pretraining.py: Hugging Face's Wav2Vec2ForPreTraining trained 20 steps with its own loss and
with its contrastive term served by sim_kernels give the same loss curve.

Tolerance: rtol 1e-5 per step (atol 1e-4). Each step's loss is a float32 sum over ~50 masked frames; the two runs'
parameters drift apart only by float32 rounding (the cosine and the log-sum-exp summed in another order) carried
through 20 AdamW steps. Observed on the 2-core CPU: largest relative difference 1.7e-7 (recordings) -- the bound
leaves room for other SIMD widths, and is far below what a wrong loss gives (a missing neg_is_pos exclusion, a
mean instead of a sum: differences of 1e-2 and more from the first step).
"""
import importlib.util
import sys
from pathlib import Path

import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]


def _example():
    spec = importlib.util.spec_from_file_location("wav2vec2_pretraining", ROOT / "examples" / "wav2vec2_pretraining.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_hf_loss_and_ours_give_the_same_20_step_curve():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~3 s on one thread; two threads on a busy 2-core machine spin for minutes
    try:
        hf, ours, source = _example().run(steps=20, batch_size=4, seed=0, data=None)
    finally:
        torch.set_num_threads(threads)
    assert source == "synthesised words" and len(hf) == len(ours) == 20
    torch.testing.assert_close(torch.tensor(ours, dtype=torch.float64), torch.tensor(hf, dtype=torch.float64),
                               rtol=1e-5, atol=1e-4)
    assert hf[0] != hf[-1], "the model trains: the curve moves"


def test_recordings_are_read_from_a_clone_layout(tmp_path):
    """The loader reads DIR/reshuffledv2/train/*.wav (44.1 kHz words) into 16 kHz clips of 10240 samples."""
    ex = _example()
    train = tmp_path / "reshuffledv2" / "train"
    train.mkdir(parents=True)
    for name in ("badaga_1.wav", "gubidi_2.wav"):
        sf.write(train / name, 0.1 * torch.randn(44100 // 2).numpy(), 44100)
    words = ex.load_recordings(tmp_path, 5, seed=0)
    assert len(words) == 2 and all(w.shape == (ex.LENGTH,) and w.dtype == torch.float32 for w in words)
    assert words[0][8000:].abs().max() == 0, "a 0.5 s word is zero-padded to 640 ms"

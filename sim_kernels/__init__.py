"""sim_kernels: the Smooth-InfoNCE loss of Smooth InfoMax, fused on CPU (C++), CUDA and Triton.

    from sim_kernels import SmoothInfoNCELoss, InfoNCELoss, smooth_infonce
"""
from . import backends  # noqa: F401  (registers the backends and their ops' fake/autograd kernels)
from .functional import smooth_infonce, smooth_infonce_with_metrics
from .loss import InfoNCELoss, SmoothInfoNCELoss
from .reference import smooth_infonce_reference
from .registry import available_backends
from .sampling import exclude_equal_to_positive, sample_negatives, wav2vec2_negatives
from .spec import LossSpec
from .wav2vec2 import wav2vec2_contrastive_loss, wav2vec2_contrastive_loss_fairseq

__all__ = ["smooth_infonce", "smooth_infonce_with_metrics", "smooth_infonce_reference", "SmoothInfoNCELoss",
           "InfoNCELoss", "sample_negatives", "available_backends", "wav2vec2_negatives", "exclude_equal_to_positive",
           "wav2vec2_contrastive_loss", "wav2vec2_contrastive_loss_fairseq", "LossSpec"]
__version__ = "0.1.0"

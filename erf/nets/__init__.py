"""Networks: Luo et al. 2016's families (``erf.nets.luo``) and model-zoo loaders
(``erf.nets.zoo``: torchvision, timm, state-dict checkpoints; ``erf.nets.hf``: Hugging Face
transformers). Layer 1: imports only the result
type."""

from erf.nets.hf import hf_model
from erf.nets.luo import (
    ConvStack,
    MaskDropout,
    ResidualBlock,
    ResidualClassifier,
    ResidualSegmenter,
    ResidualStack,
    rim_heavy_profile,
    set_padding_mode,
)
from erf.nets.zoo import (
    WeightsUnavailable,
    input_normalization,
    load_checkpoint,
    timm_model,
    torchvision_model,
)

__all__ = [
    "ConvStack",
    "MaskDropout",
    "ResidualBlock",
    "ResidualClassifier",
    "ResidualSegmenter",
    "ResidualStack",
    "WeightsUnavailable",
    "hf_model",
    "input_normalization",
    "load_checkpoint",
    "rim_heavy_profile",
    "set_padding_mode",
    "timm_model",
    "torchvision_model",
]

"""rf: what a unit *can* see, the theoretical receptive field (TRF) of PyTorch models.

Closed form for chains of convolutions and pools (``theoretical_rf``), exact interval
back-propagation over torch.fx graphs for any other model (``graph_rf``, ``layer_table``), the
one-axis interval math both are built on, the default probe targets (``auto_target``,
``stage_layers``), and ``register_rule`` for users' own modules and functions. Layer 1 of the
package: besides torch and numpy (torchvision when installed) it may import only erf.result,
never the rooms above it.
"""

from erf.rf.graph import GraphRF, NodeRF, graph_rf, layer_table, truncated_model
from erf.rf.intervals import (
    Interval,
    adaptive_interval,
    affine_interval,
    chain_1d,
    conv_interval,
    conv_transpose_interval,
    crop_interval,
    cubic_source,
    hull,
    interpolate_interval,
    linear_source,
    nearest_source,
    output_size,
)
from erf.rf.targets import auto_target, stage_layers
from erf.rf.theory import theoretical_rf
from erf.rf.trf import LayerRF, TheoreticalRF
from erf.rf.user_rules import OpCall, register_rule, unregister_rule

__all__ = [
    "GraphRF",
    "Interval",
    "LayerRF",
    "NodeRF",
    "OpCall",
    "TheoreticalRF",
    "adaptive_interval",
    "affine_interval",
    "auto_target",
    "chain_1d",
    "conv_interval",
    "conv_transpose_interval",
    "crop_interval",
    "cubic_source",
    "graph_rf",
    "hull",
    "interpolate_interval",
    "layer_table",
    "linear_source",
    "nearest_source",
    "output_size",
    "register_rule",
    "stage_layers",
    "theoretical_rf",
    "truncated_model",
    "unregister_rule",
]

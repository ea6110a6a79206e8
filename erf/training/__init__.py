"""Training for the before/after-training studies (layer 3, torch; independent of the probe):
datasets (``data``: generated tasks offline by default, CIFAR-10, CamVid), the resumable loop
(``loop``) and segmentation/classification scores (``scores``). No config; I/O through
callbacks."""

from erf.training.data import DataBundle, build_data
from erf.training.loop import TrainingInterrupted, TrainSettings, fit

__all__ = ["DataBundle", "TrainSettings", "TrainingInterrupted", "build_data", "fit"]

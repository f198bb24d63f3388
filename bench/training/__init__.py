"""Training: fit one config on one split, with the compiled engine or a plain Keras `fit`."""

from bench.training.options import TrainOptions
from bench.training.train import TrainingDiverged, TrainResult, predict_codes, train

__all__ = ["TrainOptions", "TrainResult", "TrainingDiverged", "predict_codes", "train"]

"""Scoring new videos outside the DAG (``dfdetect predict``): see :mod:`.run`."""

from .run import PredictResult, predict, safe_name, threshold_of, trained_detectors

__all__ = ["PredictResult", "predict", "safe_name", "threshold_of", "trained_detectors"]

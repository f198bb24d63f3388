"""Tracking: the one way to MLflow (runs, metrics, figures, environment tags, served models)."""

from bench.tracking.environment import environment_tags
from bench.tracking.tracker import DEFAULT_TRACKING_URI, Tracker, resolve_tracking_uri

__all__ = ["DEFAULT_TRACKING_URI", "Tracker", "environment_tags", "resolve_tracking_uri"]

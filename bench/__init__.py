"""recsys sweep bench: tune and benchmark rating-prediction recommenders."""

__version__ = "0.1.0"

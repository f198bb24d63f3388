"""recsys sweep bench: tune and benchmark rating-prediction recommenders."""

from bench import verbosity

__version__ = "0.1.0"

verbosity.inherit()  # a process started by a quiet command (a sweep worker) stays quiet

"""Tests of the MLflow side: the tracker and served models."""

"""Tests of the architectures: models, search spaces, registry."""

"""Helpers the tests share: generated data, services, subprocess sweeps."""

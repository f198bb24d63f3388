"""Tests of sweeps: studies, storages, shared studies."""

"""Tests of training: the compiled engine, lazy Adam, determinism."""

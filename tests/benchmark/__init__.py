"""Tests of the benchmark: job, predictors, statistics, report, replication."""

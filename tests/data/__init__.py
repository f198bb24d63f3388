"""Tests of data sets and the data machinery: fetch, parse, split."""

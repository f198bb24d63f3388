"""Whole-system tests: faults, the browser, the package's layout."""

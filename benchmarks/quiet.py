"""Imported first by a benchmark script: quiet as `bench` is, unless -v or --verbose is among
its arguments, before TensorFlow loads (its load-time lines come from C++, set up once)."""

import sys

from bench import verbosity

verbosity.apply(verbosity.split_flags(sys.argv[1:])[1])

"""Stand-in writers: upstream-format files with random weights, for tests, the demo and benchmarks."""

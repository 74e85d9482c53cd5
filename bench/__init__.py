"""Benchmarks: each ``bench_<name>.py`` has ``main()`` printing its figure and a ratio against a baseline."""

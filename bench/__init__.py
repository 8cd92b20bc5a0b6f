"""headstart benchmarks: run with `python -m bench`."""

"""palier's benchmarks (issue #6): ``python -m bench``; see docs/bench.md."""

"""Translation training throughput vs the eager reference: kept as the command BENCHMARKS.md records.

    PYTHONPATH=. python benchmarks/bench_translation.py pix2pix --batch-sizes 1 8 --rounds 5 --modes train

The implementation is `python -m condgan.bench` (condgan/bench/); see its help.
"""
from condgan.bench import main

if __name__ == "__main__":
    raise SystemExit(main())

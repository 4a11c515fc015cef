"""``python scripts/bench.py ARGS`` runs ``python benchmarks/bench.py ARGS``: the benchmarks
live beside the package (they need the peer, gluoncv, which the library does not), and this
path is kept because ``make bench`` and the README name it."""

import os
import sys

BENCH = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "bench.py"
)
os.execv(sys.executable, [sys.executable, BENCH] + sys.argv[1:])

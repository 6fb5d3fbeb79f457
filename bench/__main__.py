"""`python -m bench`: the whole pipeline at one or more scales, one table (see bench/run.py)."""

from bench.run import main

main()

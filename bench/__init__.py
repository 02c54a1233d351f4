"""Benchmarks, run from the repository root as modules: ``python -m bench.suite`` (all of docs/performance.md),
``python -m bench.cache_hit``, ``python -m bench.profile_hit`` …; see bench/README.md.

``_lib`` holds what they share (load generation, process and memory readings, pyea's and the baselines' servers);
each other module is one benchmark with its own ``main``. Running them with ``-m`` from the checkout makes the
code measured the code of that checkout, without touching ``sys.path``.
"""

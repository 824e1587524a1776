"""spikeship's benchmarks, one tool: ``python -m benchmarks`` runs them all (``make bench``),
``python -m benchmarks.bench_NAME`` one of them, each on its own small defaults.

Shared pieces: :mod:`benchmarks.common` (command line, machine, writing a result),
:mod:`benchmarks.runs` (the one place that calls spikeship to make the runs a benchmark
needs, cached in the scratch folder), :mod:`benchmarks.schema` (the results' schema,
checked on write and read) and :mod:`benchmarks.render` (results/*.json -> docs pages and
the README's headline block).
"""

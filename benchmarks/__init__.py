"""The benchmark scripts, importable as ``benchmarks.<name>`` from a checkout (tests, ``python -m``).

Each script also runs as ``python benchmarks/<name>.py``; none edits ``sys.path``.
"""

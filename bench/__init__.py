"""Corral benchmarks: ``python -m bench`` measures the hot paths on SQLite and PostgreSQL.

See ``docs/benchmarks.md`` for what each number means.
"""

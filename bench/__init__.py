"""Benchmarks that print tables (see the README's "Benchmarks" section)."""

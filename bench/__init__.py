"""Benchmarks that print tables (see DESIGN.md, "Benchmarks")."""

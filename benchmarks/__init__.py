"""Benchmarks that drive the project's own commands and gather their figures (`python -m benchmarks.gpu_figures`)."""

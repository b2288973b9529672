"""Analysis of batchscope run files: schema check, loading, tables, plots.

The run-file schema is documented in docs/run-file.md at the repository root.
"""

__version__: str = "0.1.0"

"""Analysis of batchscope run files: schema check, loading, tables, plots, report.

The run-file schema is documented in docs/run-file.md at the repository root.
Modules: schema (checks), load (Run objects and tidy tables), score
(accuracy, or validation loss for studies of mse runs), target
(steps-to-target), noise (gradient noise scale), scaling (S(B) fit and
B_crit), generalization (accuracy and gap per batch), findings (the answers),
plots (PNG figures), report (HTML), cli (command line).
"""

__version__: str = "0.1.0"

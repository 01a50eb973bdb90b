"""Built-in search-space DSL files (`*.yaml`); the grammar is documented in README.md here."""

"""Core: imports nothing else from websonic. Errors, tool runner, state database, job queue."""

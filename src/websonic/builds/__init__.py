"""Builds: base images, reproducible signed releases, the OCI layout store."""

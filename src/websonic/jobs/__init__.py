"""Durable background jobs: their records, logs and progress."""

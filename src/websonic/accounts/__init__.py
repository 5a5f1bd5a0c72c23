"""Customers, users, roles, portal sessions and API tokens."""

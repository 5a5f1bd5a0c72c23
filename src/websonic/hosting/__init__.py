"""Hosting: customers' servers, hosting specifications, preflight and deployments."""

"""Migration: moving a live site's database and files to the customer's server."""

"""Sites: a customer's website, its source and its `websonic.toml` manifest."""

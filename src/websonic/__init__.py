"""WebSonic: hand customer websites over to the customers' servers, and keep maintaining them."""

__version__ = "0.1.0"

"""metalnic: tenant networking for bare-metal servers through smart NICs."""

__version__ = "0.1.0"

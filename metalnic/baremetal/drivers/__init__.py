"""Hardware types and the driver interfaces they are built from."""

"""The ``metalnic`` command."""

"""The bare-metal service: an Ironic v1-compatible API over nodes and ports."""

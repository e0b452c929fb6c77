"""HTTP routes of the bare-metal API (Ironic v1-compatible subset)."""

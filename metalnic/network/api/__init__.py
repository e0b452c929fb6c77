"""HTTP routes of the network API (Neutron v2.0-compatible subset) under /network."""

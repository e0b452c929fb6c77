"""Fake BMCs that speak the real protocols, for the driver tests."""

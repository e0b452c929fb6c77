"""Tests that need root: real Open vSwitch, network namespaces and veth links (the lab)."""

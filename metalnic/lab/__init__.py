"""A small data centre on one machine: network namespaces and Open vSwitch instances."""

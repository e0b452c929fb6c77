"""The network service: a Neutron v2.0-compatible subset with smart NIC binding."""

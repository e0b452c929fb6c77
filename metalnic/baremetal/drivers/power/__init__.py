"""Power and management drivers: fake, redfish (sushy), ipmi (pyghmi)."""

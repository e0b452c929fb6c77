"""The DHCP agent: dnsmasq per network, in a namespace on an OVS bridge."""

"""Boot interfaces: ipxe (DHCP options and iPXE scripts), and fake/pxe (nothing to set up)."""

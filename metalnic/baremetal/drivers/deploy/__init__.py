"""Deploy interfaces: fake, direct (ramdisk agent), ramdisk, ansible, iscsi."""

"""The ramdisk agent that metalnic boots on hosts to write images and clean disks."""

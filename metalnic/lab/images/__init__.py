"""The lab's boot images, built from Debian packages: kernel, ramdisk, instance image.

``metalnic lab build-images`` and :func:`build` make them (cached; see
``builder``); :func:`instance_image` is the instance disk's path and sha256 for
the lab's image server.  docs/lab-images.md describes what is in them.
"""

from metalnic.lab.images.builder import Images, build, default_cache, instance_image
from metalnic.lab.images.debs import ImageBuildError

__all__ = ["ImageBuildError", "Images", "build", "default_cache", "instance_image"]

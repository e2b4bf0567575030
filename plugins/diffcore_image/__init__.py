"""diffcore's built-in image plugin: the ``image`` domain (embedded digits or a folder of
PNG/JPEG files), a DDPM-style U-Net backbone and the ``image-unet`` recipe.

See docs/domains/image.md. Registered through the entry point ``image-unet`` of the group
``diffcore`` (module :mod:`diffcore_image.plugin`).
"""

__version__ = "0.1.0"

"""Daemonless OCI images: layers, layouts, archives, base images and the registry API.

``build.py`` assembles a service's image from the wheel cache with the same
layer plan as the Docker engine path (``image.py``), without any daemon.
"""

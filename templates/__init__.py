"""orchestrator's bundled templates, installed as the package ``orchestrator._templates``.

This file makes templates/ a regular package so that importlib.resources finds it in an
editable install too: setuptools' editable finder cannot import a namespace package that
``package-dir`` maps outside its parent (pypa/setuptools#4943). A workspace's own
templates/ directory needs no such file.
"""

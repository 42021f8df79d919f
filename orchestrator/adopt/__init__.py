"""Adopting an existing repository: its manifests, pyprojects and lock files."""

"""CI pipelines for the workspace: generated workflows (`ci generate`) and their check.

``generate`` renders one file per CI system from the workspace and a few
options; ``check`` regenerates a committed file from the arguments its header
records and compares the bytes.
"""

"""The fault drills of scripts/drill, as a package: `python3 -m drills` (see __main__.py for the
usage, the environment it reads and what lives in which module)."""

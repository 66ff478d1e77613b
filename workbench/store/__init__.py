"""Files on disk: atomic writes and checked output paths, and the run directory."""

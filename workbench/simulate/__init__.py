"""The built-in log simulator: its vocabulary of templates and the engine that writes logs with
ground truth."""

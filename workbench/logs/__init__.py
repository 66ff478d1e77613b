"""Raw logs to entries: built-in and inferred formats, the template parser (which owns its session
rule), the one grouping of entries into sessions, and reading plain or compressed files."""

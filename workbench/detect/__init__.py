"""Detection over parsed entries: scoring a frame, the report and its coverage, the rule that
fired, the HTML report, and the chunked (streaming) and Dask paths that share the same scoring."""

"""Operator feedback: the journal of verdicts and model versions, and the online stream protocol."""

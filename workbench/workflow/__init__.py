"""Workflow construction: method 1 (from a next-key model), method 2 (co-occurrence), task
separation over time lags, the automaton, and diagnosis along a workflow."""

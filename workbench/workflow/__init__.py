"""Workflow construction and diagnosis along a workflow.

- :mod:`~workbench.workflow.cooccurrence`: method 2, tasks separated by key co-occurrence, and
  :func:`~workbench.workflow.cooccurrence.build_workflows` (one automaton per task);
- :mod:`~workbench.workflow.presence`, :mod:`~workbench.workflow.lag_cooccurrence`: co-occurrence
  by position and by time lag; :mod:`~workbench.workflow.growing`: growing tasks from them;
- :mod:`~workbench.workflow.from_keymodel`: method 1, tasks read off a next-key model;
- :mod:`~workbench.workflow.automaton`: the automaton (FSA) of one task;
  :mod:`~workbench.workflow.lag_order`: its transitions from consistent-lag order, without sessions;
- :mod:`~workbench.workflow.mining`: which way a log's workflows are mined (per session, or by
  time lag where the log has no usable session ids), and why;
- :mod:`~workbench.workflow.layout`, :mod:`~workbench.workflow.export`,
  :mod:`~workbench.workflow.scores`: drawing, exporting and scoring an automaton;
- :mod:`~workbench.workflow.diagnosis`: an anomaly explained along its workflow, with
  :mod:`~workbench.workflow.context` (the entry's session and task),
  :mod:`~workbench.workflow.timing` (slow transitions) and :mod:`~workbench.workflow.sentences`.
"""

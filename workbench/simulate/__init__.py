"""The built-in log simulator: an OpenStack-like cloud that writes nova logs with ground truth.

- :mod:`~workbench.simulate.config`: :class:`SimulatorConfig` and the kinds of anomaly;
- :mod:`~workbench.simulate.vocabulary`: the tasks, their steps, timing and message templates;
- :mod:`~workbench.simulate.plan`: the instances, their tasks, the timeline and the records of
  every line that may be logged;
- :mod:`~workbench.simulate.anomalies`: which instances are anomalous and what each anomaly changes;
- :mod:`~workbench.simulate.background`: API lines and background noise;
- :mod:`~workbench.simulate.engine`: :func:`simulate`, from the config to the labelled log;
- :mod:`~workbench.simulate.truth`: the ground truth (:class:`SimulatedLog`, task workflows);
- :mod:`~workbench.simulate.command`: the ``deeplog-workbench simulate`` command.
"""

"""The log-key model (docs/METHOD.md section 2) and the baselines it is compared with.

Reading and framing: ``keyfiles`` (key-sequence files), ``vocabulary`` (key ids to indices),
``windows`` (framing, distinct sessions and windows), ``splits`` (held-out rare sequences).
The model: ``config`` (:class:`~workbench.keys.config.KeyModelConfig`), ``networks``, ``examples``
(training examples, input rows), ``model`` (:class:`~workbench.keys.model.KeyModel`), ``fitting``
(the steps of ``fit``), ``online`` (``partial_fit``). Detection: ``scores`` (ranks, the one rank
rule), ``topg`` (verdicts), ``selection`` (g, END limit and floor). Baselines: ``baselines``,
``ngram``.
"""

"""The parameter-value models: one LSTM per log key over its parameter vectors, and the thresholds
that turn their errors into verdicts.

- ``config``: :class:`~workbench.params.config.ParamModelConfig`, every setting (online update's too)
- ``vectors``: a key's entries as a time series of ``[elapsed, params...]`` vectors, and windows
- ``scaling``: per-key log scale and normalisation, and whether a key gets a model at all
- ``network``: the per-key LSTMs stacked into one module, and the masked MSE
- ``batches``: a key's normalised windows, padded batches of several keys
- ``training``: every key trained at once, each with its own early stopping (the one train loop)
- ``scoring``: every entry's MSE, confidence, thresholds and verdicts
- ``update``: the online update from one confirmed-normal example
- ``levels``: confidence levels, their labels, the Sidak correction for several entries
- ``gaussian``: the paper's threshold rule, a Gaussian over the validation MSEs (or their log)
- ``conformal``: the default rule, a key's empirical quantile with a tail pooled over keys
- ``thresholds``: the rule a configuration asks for, fitted per key or rebuilt from a state
- ``verdicts``: verdicts per VM instance from the per-entry scores
- ``model``: :class:`~workbench.params.model.ParamModel`, which ties them together (fit, score,
  update, save)
"""

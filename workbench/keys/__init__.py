"""The log-key model: vocabulary and windows, the LSTM next-key model and its online update, the
top-g rule, and the baselines it is compared with."""

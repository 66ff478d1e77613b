"""The parameter-value models: parameter vectors and scaling, one LSTM per log key, and the
Gaussian or conformal thresholds that turn errors into verdicts."""

"""Credit review: a config-driven training pipeline (optimal-binning scorecard and a monotone
LightGBM challenger, calibrated), reason codes, fairness report, model cards and a registry,
the PD → tier policy and PSI monitoring."""

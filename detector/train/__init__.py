"""Dataset assembly, training and evaluation (never imported by the service)."""

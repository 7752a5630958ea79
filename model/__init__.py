"""The model package: data, architectures, training, evaluation and export. Never imports Dash."""

"""Dataset-scale feature extraction (sources, stages, dataset writer)."""

"""Datasets, synthetic scene generators and transforms."""

"""Experiment configuration: typed dataclasses loaded from YAML (schema) by one loader."""

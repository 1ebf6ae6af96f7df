"""Plots (matplotlib, Agg backend, PNG files): one module per view."""

"""Lazy answers: right-looking results without the technique; each must lose its points."""

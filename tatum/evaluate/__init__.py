"""Evaluation: symbolic music metrics and the genre / pianist / real-music classifiers."""

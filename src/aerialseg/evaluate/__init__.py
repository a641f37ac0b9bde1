"""Evaluation: scores from confusion matrices, scoring predictions against masks, and the report.
"""

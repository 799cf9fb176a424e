"""Learned routing: outcome data, quality predictors trained on it, and their artifacts.

Serving (loading an artifact and scoring a request) needs NumPy and an encoder only;
training needs the `train` extra (scikit-learn, torch).
"""

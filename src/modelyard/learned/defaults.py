"""Training defaults shared by `modelyard router train` and `modelyard eval`.

Kept free of NumPy so the CLI can show them as option defaults on a light install.
"""

from typing import Final

# Folds of the hyper-parameter search. One number for `modelyard router train` and
# `modelyard eval`: the artifact a user deploys is chosen exactly as the evaluation's
# routers were (3 keeps a full evaluation of a large dataset within minutes).
SEARCH_FOLDS: Final = 3

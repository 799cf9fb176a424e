"""Owned specialists: small classifiers trained on the user's own labelled data (or on
answers a frontier model already gave), served in process as `specialist/<name>`.

    data.py        CSV/JSONL loading, with errors naming the line and column
    encoders.py    the encoder an artifact names, and batched encoding
    train.py       embeddings + a calibrated linear/MLP head (scikit-learn, training only)
    calibration.py temperature scaling, ECE, the coverage/accuracy curve, the threshold
    artifact.py    the versioned artifact, loadable with NumPy alone
    manifest.py    its manifest and folders (JSON only: read at gateway start-up)
    evaluate.py    accuracy, macro-F1, per-class report, ECE, coverage curve, PNG
    report.py      the evaluation report as terminal tables
    distill.py     a training set from captured ledger exchanges of one task
    text.py        which text of a chat request a specialist reads
    provider.py    the `specialist` adapter (a ChatProvider)
    settings.py    a specialist deployment's URL: artifact, threshold, cost per call
    stack.py       specialists into the catalog (config section and auto-discovery)
    cli.py         `modelyard specialist train|eval|distill|list`

This package's `__init__` imports nothing, so the engine can read manifests without
NumPy installed.
"""

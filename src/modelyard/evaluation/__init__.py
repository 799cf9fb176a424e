"""Offline evaluation of routers: replay recorded outcomes through the server's Engine.

`harness.ReplayHarness` (the Engine over a `replay.ReplayProvider`), `metrics` (AIQ,
APGR, CPT, hulls, oracle), `sweep` / `evaluate` / `summary` (train, calibrate, sweep,
pool across folds), `report` (tables, JSON, PNG, HTML) and `cli` (`modelyard eval`).
"""

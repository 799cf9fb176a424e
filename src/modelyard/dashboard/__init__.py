"""The operator's dashboard at `/ui`: spend, savings, decisions, health, specialists.

Server-rendered Jinja2 pages with htmx (for the decision explorer's filters and
pages) and Chart.js (charts), both vendored under `static/` with their licences,
so it works offline. It reads the SQL ledger read-only through SQLAlchemy Core,
aggregating in SQL over indexed date ranges (migration m009).
"""

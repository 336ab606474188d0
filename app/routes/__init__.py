"""API routers: one module per resource (datasets, jobs, reports, dashboard, health)."""

"""`imgcls serve`: a trained run or an export behind an HTTP API and a page (app.py),
concurrent requests gathered into one model call (batcher.py), counted for Prometheus
(metrics.py)."""

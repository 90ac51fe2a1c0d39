"""The API tests: the API runs as a real uvicorn process (helpers.py: ``api_process``) on the
session's redis-server. Each module starts it once, from a module-scoped fixture of its own,
because each needs its own settings (body limit, forwarded IPs, tokens) and key prefix; the UI
and chaos tests start it the same way. Nothing here is shared beyond tests/conftest.py yet."""

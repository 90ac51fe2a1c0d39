"""The dashboard tests: pages and forms over HTTP against a real API process
(tests/api/helpers.py), the browser test with Debian's chromium, and the size samples the charts
read. Nothing here is shared beyond tests/conftest.py yet."""

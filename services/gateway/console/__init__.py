"""The web console: server-rendered pages at /console, same origin as the REST API under /v1."""

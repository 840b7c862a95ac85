"""One module per page: ``layout(...)`` (static, no API calls) and ``register(app, context)``
(its callbacks, which read the API through the context's client)."""

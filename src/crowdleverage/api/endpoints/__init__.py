"""HTTP routers by actor. Endpoints are thin: authorize, call a use case, shape the answer."""

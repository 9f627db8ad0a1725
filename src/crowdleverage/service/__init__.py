"""The platform as a service: one writer process, API workers reading read models."""

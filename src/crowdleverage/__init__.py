"""CrowdLeverage: compliant pooled stock margin financing (众筹股票配资)."""

__version__ = "0.1.0"

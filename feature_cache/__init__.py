"""feature_cache package."""

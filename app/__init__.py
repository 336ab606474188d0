"""app package: the service, its CLI and dashboard over the probe and feature_cache libraries."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mr2probe")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

"""blurbench: does ImageNet pretraining on face-blurred images transfer as well as the original?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("blurbench")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

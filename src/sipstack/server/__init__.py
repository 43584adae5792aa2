"""``sipstack serve``: the registrar (and, as it grows, the proxy) as a server process."""

from .app import Server
from .config import ServerConfig, load_config

__all__ = ["Server", "ServerConfig", "load_config"]

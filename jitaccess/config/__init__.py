"""Settings (pydantic-settings) and loading of the catalogue and users YAML."""

from jitaccess.config.settings import Settings, UserEntry, load_catalogue, load_users

__all__ = ["Settings", "UserEntry", "load_catalogue", "load_users"]

"""Keystead core: domain, storage, HSM access and services. Never imports a GUI toolkit."""

__version__ = "0.1.0"

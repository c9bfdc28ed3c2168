"""Keystead's Qt GUI. Imports app/; app/ never imports this."""

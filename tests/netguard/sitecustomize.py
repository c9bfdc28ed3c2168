"""Loaded by Python subprocesses of the test suite (``PYTHONPATH``): the same network guard."""

import network_guard

network_guard.install()

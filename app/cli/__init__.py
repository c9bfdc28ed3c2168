"""The ``keystead`` command line over the same core as the GUI."""

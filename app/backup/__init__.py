"""Encrypted offline backups: the format (``format``), the KEK's SLIP-39 shares (``shares``)
and the media they are written to (``media``). Specified byte for byte in
docs/backup-format.md."""

"""Key ceremonies: reviewed TOML scripts, a witnessed state machine, and transcripts.

``script`` parses and validates a script (pure); ``steps`` holds the registered step types,
each one small function calling the existing services; ``runner`` is the state machine the
CLI and the Qt page both drive; ``transcript`` builds, hashes, verifies and compares the
evidence. Nothing here imports PySide6.
"""

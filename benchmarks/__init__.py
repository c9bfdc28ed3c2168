"""Performance comparisons against raw peers; run by hand, never part of the test suite."""

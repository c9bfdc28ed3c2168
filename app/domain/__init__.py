"""Pure domain model: algorithms, purposes, key records, names, fingerprints. No I/O."""

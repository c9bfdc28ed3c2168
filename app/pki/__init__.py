"""X.509 for token keys: building TBS structures (asn1crypto), profiles, linting (pkilint)."""

"""CRL revocation reasons (RFC 5280 section 5.3.1), by the names cryptography's
``x509.ReasonFlags`` gives them; kept apart from the certificate service so the command line can
offer them without importing it."""

REASONS = (
    "unspecified",
    "key_compromise",
    "ca_compromise",
    "affiliation_changed",
    "superseded",
    "cessation_of_operation",
    "privilege_withdrawn",
)

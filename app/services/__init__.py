"""Use cases over the domain, storage and HSM layers. Run on the core worker thread."""

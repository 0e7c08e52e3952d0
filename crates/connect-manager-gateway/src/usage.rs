//! G7: last use, reported to the manager in batches, at most once a minute per token.

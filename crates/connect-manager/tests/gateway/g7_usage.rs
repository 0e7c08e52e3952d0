//! G7: the gateway's usage reports.

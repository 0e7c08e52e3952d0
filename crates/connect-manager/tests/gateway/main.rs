//! The gateway (SPEC G), run as operators run it: the built binary's `serve` as the manager,
//! its `gateway` in front of the Connect API stand-in (tests/gateway/connect_standin.py).

mod support;

mod g1_settings;

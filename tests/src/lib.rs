//! Holds no code: the tests live under `tests/`, one binary for the whole system.

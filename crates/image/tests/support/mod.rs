//! Test servers shared by the integration tests.

pub mod hostile;

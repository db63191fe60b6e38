//! Test support for tufd's end-to-end tests: real processes, real tokens,
//! real servers, each in a fresh temporary directory.

pub mod bench;
pub mod daemon;
pub mod hooks;
pub mod hostile;
pub mod hostile_upstream;
pub mod json_output;
pub mod notary;
pub mod process;
pub mod python;
pub mod raw;
pub mod registry;
pub mod softhsm;
pub mod static_http;
pub mod tuf1;
pub mod tufctl_client;
pub mod tufrepo;
pub mod users;
pub mod vcard;

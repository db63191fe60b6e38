//! tufd: a hardware-token signing daemon for TUF and Docker Content Trust.
//!
//! Layers, each knowing only the one below:
//! - [`service`]: tonic adapters (who is calling, map errors to statuses);
//! - [`keyring`]: every configured token behind one async interface;
//! - `tufd-keys`: the token backends (PKCS#11), which know nothing of TUF;
//! - `tufd-tuf`: the TUF metadata model, which knows nothing of tokens.
//!
//! [`server`] wires them to a Unix socket; [`config`] reads the TOML file.

pub mod audit;
pub mod check;
pub mod config;
pub mod connections;
pub mod cpu;
pub mod keyring;
pub mod logging;
pub mod manual;
pub mod memory;
pub mod mirror;
pub mod policy;
pub mod server;
pub mod service;
pub mod testhook;
pub mod trust;
pub mod tuf1;
pub mod zalloc;

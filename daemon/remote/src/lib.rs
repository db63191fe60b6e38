//! Notary-server client (placeholder: being written).

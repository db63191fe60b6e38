//! Starts notary-signer and notary-server on loopback (being written).

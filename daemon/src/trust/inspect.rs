//! `docker trust inspect` semantics (being written).

//! Starts the virtual PIV card behind a private pcscd (being written).

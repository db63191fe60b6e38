//! Loaded PKCS#11 modules, one `C_Initialize` per library per process.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Loads each PKCS#11 library once and shares it between the tokens that
/// use it (several SoftHSM2 or HSM tokens behind one module). A module that
/// failed to load is tried again on the next request, so installing the
/// package fixes a running daemon.
#[derive(Default)]
pub struct Modules {
    loaded: Mutex<HashMap<PathBuf, Pkcs11>>,
}

impl Modules {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the initialized module at `path`, loading it if needed.
    pub fn get(&self, path: &Path) -> Result<Pkcs11, String> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ctx) = loaded.get(path) {
            return Ok(ctx.clone());
        }
        if !path.exists() {
            return Err("no such file".into());
        }
        let ctx = Pkcs11::new(path).map_err(|e| e.to_string())?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(format!("C_Initialize failed: {e}")),
        }
        loaded.insert(path.to_owned(), ctx.clone());
        Ok(ctx)
    }
}

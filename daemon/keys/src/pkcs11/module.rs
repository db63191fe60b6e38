//! Loaded PKCS#11 modules, one `C_Initialize` per library per process.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Loads each PKCS#11 library once and shares it between the tokens that
/// use it (several SoftHSM2 or HSM tokens behind one module). A module that
/// failed to load is tried again on the next request, so installing the
/// package fixes a running daemon.
#[derive(Default)]
pub struct Modules {
    loaded: Mutex<HashMap<PathBuf, Pkcs11>>,
    /// The modules' `C_Sign`, for keys that want a login per signature.
    single_part: Mutex<HashMap<PathBuf, Arc<SinglePartSign>>>,
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

    /// The single-part `C_Sign` of the module at `path` (loaded with
    /// [`Modules::get`] first: it is initialized then).
    pub(super) fn single_part_sign(&self, path: &Path) -> Result<Arc<SinglePartSign>, String> {
        let mut loaded = self.single_part.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = loaded.get(path) {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(SinglePartSign::load(path)?);
        loaded.insert(path.to_owned(), Arc::clone(&s));
        Ok(s)
    }
}

/// A module's `C_Sign` called without `C_SignInit`, which cryptoki does not
/// offer: a key with `CKA_ALWAYS_AUTHENTICATE` needs `C_SignInit`, then
/// `C_Login(CKU_CONTEXT_SPECIFIC)`, then the data, and `CKM_ECDSA` is
/// single-part only (no `C_SignUpdate`).
pub(super) struct SinglePartSign {
    /// Keeps the library mapped (the same one cryptoki loaded: the loader
    /// counts references, and the module's state is shared).
    _library: cryptoki_sys::Pkcs11,
    sign: unsafe extern "C" fn(
        cryptoki_sys::CK_SESSION_HANDLE,
        *mut cryptoki_sys::CK_BYTE,
        cryptoki_sys::CK_ULONG,
        *mut cryptoki_sys::CK_BYTE,
        *mut cryptoki_sys::CK_ULONG,
    ) -> cryptoki_sys::CK_RV,
}

impl SinglePartSign {
    fn load(path: &Path) -> Result<Self, String> {
        // SAFETY: loads the PKCS#11 library cryptoki has loaded already
        // (its initializers have run); nothing else is called here.
        let library = unsafe { cryptoki_sys::Pkcs11::new(path) }.map_err(|e| e.to_string())?;
        let mut list: *mut cryptoki_sys::CK_FUNCTION_LIST = std::ptr::null_mut();
        // SAFETY: C_GetFunctionList writes a pointer to the module's static
        // function table, valid while the library is loaded (`_library`).
        let rv = unsafe { library.C_GetFunctionList(&mut list) };
        if rv != cryptoki_sys::CKR_OK || list.is_null() {
            return Err(format!("C_GetFunctionList failed (CK_RV {rv:#x})"));
        }
        // SAFETY: `list` is non-null and points to the module's table.
        let sign = unsafe { (*list).C_Sign }.ok_or("the module has no C_Sign")?;
        Ok(Self {
            _library: library,
            sign,
        })
    }

    /// `C_Sign` of `data` on `session`, whose signing operation was
    /// started with `C_SignInit`; the signature (at most 256 bytes).
    pub(super) fn sign(
        &self,
        session: &cryptoki::session::Session,
        data: &[u8],
    ) -> Result<Vec<u8>, Error> {
        use cryptoki::context::Function;
        use cryptoki::error::Rv;
        let mut out = vec![0u8; 256];
        let mut len = cryptoki_sys::CK_ULONG::try_from(out.len()).map_err(Error::from)?;
        let data_len = cryptoki_sys::CK_ULONG::try_from(data.len()).map_err(Error::from)?;
        // SAFETY: the session handle is open (`session` is borrowed), the
        // data pointer is read for `data_len` bytes only (PKCS#11 does not
        // write the input), and the output buffer holds `len` bytes.
        let rv = unsafe {
            (self.sign)(
                session.handle(),
                data.as_ptr().cast_mut(),
                data_len,
                out.as_mut_ptr(),
                &mut len,
            )
        };
        Rv::from(rv).into_result(Function::Sign)?;
        out.truncate(usize::try_from(len).map_err(Error::from)?);
        Ok(out)
    }
}

//! ECDSA P-256 verification with a precomputed table of the public key's
//! multiples, for keys that sign often.
//!
//! Verification computes `u1·G + u2·Q`. OpenSSL keeps a table of the
//! generator `G`'s multiples but computes `u2·Q` from scratch each time,
//! which is most of the ~60 µs a verification costs here. For a key that
//! signs thousands of times, a group whose generator is `Q`, with its own
//! table (`EC_GROUP_precompute_mult`), makes `u2·Q` as cheap as `u1·G`:
//! verification takes about half the time. The table costs about 150 KB
//! and tens of milliseconds to build, so [`super::Verifier`] builds it only
//! for hot keys, and only a bounded number of them.
//!
//! The check is SEC 1's ECDSA verification (4.1.4) on OpenSSL's
//! arithmetic; the tests compare it with p256's and OpenSSL's own verifier.

use foreign_types::ForeignType;
use openssl::bn::{BigNum, BigNumContext, BigNumRef};
use openssl::ec::{EcGroup, EcPoint, EcPointRef};
use openssl::error::ErrorStack;
use openssl::nid::Nid;
use std::sync::atomic::{AtomicUsize, Ordering};

/// At most this many tables exist at once (about 150 KB each).
pub(super) const MAX_TABLES: usize = 32;

/// Tables now alive, bounded by [`MAX_TABLES`].
static TABLES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" {
    // Deprecated in OpenSSL 3.0 but exported by its libcrypto; openssl-sys
    // does not declare it. Returns 1 on success.
    fn EC_GROUP_precompute_mult(
        group: *mut openssl_sys::EC_GROUP,
        ctx: *mut openssl_sys::BN_CTX,
    ) -> std::ffi::c_int;
}

/// A slot in the table budget, given back when dropped.
struct Budget;

impl Budget {
    fn take() -> Option<Self> {
        TABLES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_TABLES).then_some(n + 1)
            })
            .ok()
            .map(|_| Budget)
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        TABLES.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The curve with its usual generator, the curve with generator `Q` and
/// `Q`'s table, and the group order `n`.
pub(super) struct Table {
    curve: EcGroup,
    by_key: EcGroup,
    order: BigNum,
    _budget: Budget,
}

impl Table {
    /// Builds `q`'s table (`q` a P-256 point, SEC 1 encoded); `None` when
    /// the budget is spent or OpenSSL fails (the caller keeps verifying
    /// without a table).
    pub(super) fn build(q_sec1: &[u8]) -> Option<Self> {
        let budget = Budget::take()?;
        let make = || -> Result<Self, ErrorStack> {
            let curve = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            let mut ctx = BigNumContext::new()?;
            let mut order = BigNum::new()?;
            curve.order(&mut order, &mut ctx)?;
            let q = EcPoint::from_bytes(&curve, q_sec1, &mut ctx)?;
            let mut by_key = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
            by_key.set_generator(q, order.to_owned()?, BigNum::from_u32(1)?)?;
            // SAFETY: both pointers are valid, owned objects for the call;
            // the function only writes the group's precomputation.
            if unsafe { EC_GROUP_precompute_mult(by_key.as_ptr(), ctx.as_ptr()) } != 1 {
                return Err(ErrorStack::get());
            }
            Ok(Self {
                curve,
                by_key,
                order,
                _budget: budget,
            })
        };
        make().ok()
    }

    /// Whether `raw` (`r || s`) is a valid signature of `digest` by `Q`.
    pub(super) fn verify(&self, digest: &[u8; 32], raw: &[u8; 64]) -> bool {
        self.check(digest, raw).unwrap_or(false)
    }

    fn check(&self, digest: &[u8; 32], raw: &[u8; 64]) -> Result<bool, ErrorStack> {
        let n = &self.order;
        let r = BigNum::from_slice(&raw[..32])?;
        let s = BigNum::from_slice(&raw[32..])?;
        if !in_range(&r, n) || !in_range(&s, n) {
            return Ok(false);
        }
        let mut ctx = BigNumContext::new()?;
        // The digest is as long as n: e is the digest itself (SEC 1 4.1.4
        // step 3); u1 = e·s⁻¹ and u2 = r·s⁻¹ mod n.
        let e = BigNum::from_slice(digest)?;
        let mut w = BigNum::new()?;
        w.mod_inverse(&s, n, &mut ctx)?;
        let mut u1 = BigNum::new()?;
        u1.mod_mul(&e, &w, n, &mut ctx)?;
        let mut u2 = BigNum::new()?;
        u2.mod_mul(&r, &w, n, &mut ctx)?;
        // R = u1·G + u2·Q, each from its generator's table.
        let mut u1g = EcPoint::new(&self.curve)?;
        u1g.mul_generator2(&self.curve, &u1, &mut ctx)?;
        let mut u2q = EcPoint::new(&self.curve)?;
        u2q.mul_generator2(&self.by_key, &u2, &mut ctx)?;
        let mut big_r = EcPoint::new(&self.curve)?;
        big_r.add(&self.curve, &u1g, &u2q, &mut ctx)?;
        self.x_mod_n_is(&big_r, &r, &mut ctx)
    }

    /// Whether `point` is not at infinity and its x mod n is `r`.
    fn x_mod_n_is(
        &self,
        point: &EcPointRef,
        r: &BigNumRef,
        ctx: &mut BigNumContext,
    ) -> Result<bool, ErrorStack> {
        if point.is_infinity(&self.curve) {
            return Ok(false);
        }
        let (mut x, mut y) = (BigNum::new()?, BigNum::new()?);
        point.affine_coordinates(&self.curve, &mut x, &mut y, ctx)?;
        let mut v = BigNum::new()?;
        v.nnmod(&x, &self.order, ctx)?;
        Ok(&*v == r)
    }
}

/// 0 < v < n.
fn in_range(v: &BigNumRef, n: &BigNumRef) -> bool {
    !v.is_negative() && v.num_bits() > 0 && v < n
}

//! pkcs11-probe: asks a PKCS#11 token what tufd's tests need to check,
//! independently of tufd. Runs in its own process so each test can point it
//! at its own SoftHSM2 configuration.
//!
//! Usage: pkcs11-probe MODULE TOKEN_LABEL PIN KEY_ID_HEX
//!
//! Prints one JSON object: whether the private key exists, its policy
//! attributes, and what reading `CKA_VALUE` returned.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, module, label, pin, id] = args.as_slice() else {
        eprintln!("usage: pkcs11-probe MODULE TOKEN_LABEL PIN KEY_ID_HEX");
        std::process::exit(2);
    };
    let ctx = Pkcs11::new(module).expect("load module");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("initialize");
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label().trim() == label)
                .unwrap_or(false)
        })
        .expect("token with that label");
    let session = ctx.open_ro_session(slot).expect("session");
    session
        .login(UserType::User, Some(&AuthPin::from(pin.clone())))
        .expect("login");
    let handles = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(hex::decode(id).expect("hex key id")),
        ])
        .expect("find");
    let Some(&h) = handles.first() else {
        println!("{}", serde_json::json!({"found": false}));
        return;
    };
    let value = match session.get_attribute_info(h, &[AttributeType::Value]) {
        Ok(info) => match info.first() {
            Some(AttributeInfo::Sensitive) => "sensitive".to_owned(),
            Some(AttributeInfo::Available(n)) => format!("readable ({n} bytes)"),
            other => format!("{other:?}"),
        },
        Err(e) => format!("error: {e}"),
    };
    let attrs = session
        .get_attributes(
            h,
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::AlwaysSensitive,
                AttributeType::NeverExtractable,
                AttributeType::Local,
            ],
        )
        .expect("attributes");
    let get = |t: AttributeType| {
        attrs.iter().find_map(|a| match (a, t) {
            (Attribute::Sensitive(v), AttributeType::Sensitive)
            | (Attribute::Extractable(v), AttributeType::Extractable)
            | (Attribute::AlwaysSensitive(v), AttributeType::AlwaysSensitive)
            | (Attribute::NeverExtractable(v), AttributeType::NeverExtractable)
            | (Attribute::Local(v), AttributeType::Local) => Some(*v),
            _ => None,
        })
    };
    println!(
        "{}",
        serde_json::json!({
            "found": true,
            "value": value,
            "sensitive": get(AttributeType::Sensitive),
            "extractable": get(AttributeType::Extractable),
            "always_sensitive": get(AttributeType::AlwaysSensitive),
            "never_extractable": get(AttributeType::NeverExtractable),
            "local": get(AttributeType::Local),
        })
    );
}

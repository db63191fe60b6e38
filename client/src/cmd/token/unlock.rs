//! `tufctl token unlock`.

use crate::cmd::Ctx;
use crate::output::{self, Failure};
use clap::Args;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;
use tufd_proto::v1::{self, keys_client::KeysClient};
use zeroize::Zeroizing;

/// `token unlock` arguments.
#[derive(Args)]
pub struct UnlockArgs {
    /// Token name from the daemon configuration.
    pub name: String,
    /// File holding the PIN (first line).
    #[arg(long, value_name = "FILE")]
    pub pin_file: Option<PathBuf>,
}

/// The PIN for `token unlock`: --pin-file, else TUFCTL_PIN, else a prompt.
fn read_pin(file: Option<PathBuf>, token: &str) -> Result<Zeroizing<String>, Failure> {
    let pin = if let Some(f) = file {
        let text = Zeroizing::new(std::fs::read_to_string(&f).map_err(|e| {
            Failure::input(format!("cannot read the PIN file {}: {e}", f.display()))
        })?);
        Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
    } else if let Ok(p) = std::env::var("TUFCTL_PIN") {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("PIN for token '{token}': "))
            .map(Zeroizing::new)
            .map_err(|e| Failure::input(format!("cannot read the PIN: {e}")))?
    } else {
        return Err(Failure::input(
            "no PIN: give --pin-file, set TUFCTL_PIN, or run on a terminal to be asked",
        ));
    };
    if pin.is_empty() {
        return Err(Failure::input("the PIN is empty; nothing was sent"));
    }
    Ok(pin)
}

impl UnlockArgs {
    /// Runs `tufctl token unlock NAME`.
    pub async fn run(self, ctx: &mut Ctx) -> Result<(), Failure> {
        let UnlockArgs { name, pin_file } = self;
        let out = &ctx.out;
        let mut pin = read_pin(pin_file, &name)?;
        let r = KeysClient::new(ctx.channel.clone())
            .unlock_token(v1::UnlockTokenRequest {
                token: name.clone(),
                pin: std::mem::take(&mut *pin),
                confirm_last_try: false,
            })
            .await?
            .into_inner();
        let token = r
            .token
            .ok_or_else(|| Failure::input("the daemon returned no token"))?;
        if out.json() {
            out.print_json(&json!({
                "token": output::token_json(&token),
                "cache_seconds": r.cache_seconds,
            }));
        } else {
            let until = if r.cache_seconds == 0 {
                "until it stops".to_owned()
            } else {
                format!("for {} s", r.cache_seconds)
            };
            println!(
                "Token '{}' unlocked: the PIN was verified on the device; the daemon keeps it {until}.",
                token.name
            );
            if !token.detail.is_empty() {
                println!("{}: {}", token.name, token.detail);
            }
        }
        Ok(())
    }
}

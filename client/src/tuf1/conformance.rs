//! `tufctl tuf client`: a TUF 1.0 client with the command line the TUF
//! conformance suite drives (`init`, `refresh`, `download`). No daemon is
//! involved.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{fetch, updater};
use crate::output::Failure;

/// `tuf client`.
#[derive(Args)]
pub struct ClientArgs {
    /// Where trusted metadata is kept (root.json, timestamp.json, …).
    #[arg(long, value_name = "DIR")]
    pub metadata_dir: PathBuf,
    /// Base URL of the repository's metadata.
    #[arg(long, value_name = "URL")]
    pub metadata_url: Option<String>,
    /// Target to download; repeat.
    #[arg(long = "target-name", value_name = "PATH")]
    pub target_names: Vec<String>,
    /// Base URL of the repository's targets.
    #[arg(long, value_name = "URL")]
    pub target_base_url: Option<String>,
    /// Where downloaded targets go.
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Time limit of each HTTP request, in seconds.
    #[arg(long, default_value_t = 30)]
    pub http_timeout: u64,
    #[command(subcommand)]
    pub command: ClientCommand,
}

/// The conformance-suite client commands.
#[derive(Subcommand)]
pub enum ClientCommand {
    /// Trust TRUSTED_ROOT: copy it into the metadata directory (no network).
    Init {
        /// The root metadata file to trust.
        trusted_root: PathBuf,
    },
    /// Update the metadata from --metadata-url.
    Refresh,
    /// Update, then download every --target-name into --target-dir.
    Download,
}

/// Runs `tuf client`.
pub async fn run_client(a: ClientArgs) -> Result<(), Failure> {
    let fail = |e: &dyn std::fmt::Display| Failure::daemon("client", e.to_string());
    match a.command {
        ClientCommand::Init { trusted_root } => {
            std::fs::create_dir_all(&a.metadata_dir).map_err(|e| fail(&e))?;
            let bytes = std::fs::read(&trusted_root).map_err(|e| fail(&e))?;
            tufd_tuf1::Metadata::<tufd_tuf1::Root>::from_bytes(&bytes).map_err(|e| fail(&e))?;
            std::fs::write(a.metadata_dir.join("root.json"), bytes).map_err(|e| fail(&e))?;
            Ok(())
        }
        command => {
            let url = a
                .metadata_url
                .ok_or_else(|| Failure::input("--metadata-url is required"))?;
            let fetcher = fetch::Fetcher::new(std::time::Duration::from_secs(a.http_timeout))
                .map_err(|e| fail(&e))?;
            let mut u =
                updater::Updater::load(&a.metadata_dir, &url, fetcher).map_err(|e| fail(&e))?;
            u.refresh().await.map_err(|e| fail(&e))?;
            if let ClientCommand::Download = command {
                let base = a
                    .target_base_url
                    .ok_or_else(|| Failure::input("--target-base-url is required"))?;
                let dir = a
                    .target_dir
                    .ok_or_else(|| Failure::input("--target-dir is required"))?;
                for name in &a.target_names {
                    let info = u.target_info(name).await.map_err(|e| fail(&e))?;
                    u.download(name, &info, &base, &dir)
                        .await
                        .map_err(|e| fail(&e))?;
                }
            }
            Ok(())
        }
    }
}

//! `tufctl tuf client` (tufd's TUF 1.0 client, no daemon involved) run
//! against a repository directory served over loopback HTTP.

use std::path::Path;

use crate::daemon::{CmdOutput, TestEnv};
use crate::static_http::StaticHttp;

/// Serves `repo`, trusts its `1.root.json` in the client metadata
/// directory `md` (first use), and downloads `names` into `dl` with
/// `tufctl tuf client … download`.
pub fn download(env: &TestEnv, repo: &Path, md: &Path, dl: &Path, names: &[&str]) -> CmdOutput {
    let server = StaticHttp::start(repo.to_owned());
    if !md.join("root.json").exists() {
        let root = repo.join("metadata/1.root.json");
        env.tufctl(&[
            "tuf",
            "client",
            "--metadata-dir",
            md.to_str().unwrap(),
            "init",
            root.to_str().unwrap(),
        ])
        .ok();
    }
    let metadata_url = format!("{}/metadata", server.url());
    let targets_url = format!("{}/targets", server.url());
    let mut args = vec![
        "tuf",
        "client",
        "--metadata-dir",
        md.to_str().unwrap(),
        "--metadata-url",
        &metadata_url,
    ];
    for n in names {
        args.extend(["--target-name", n]);
    }
    args.extend([
        "--target-base-url",
        &targets_url,
        "--target-dir",
        dl.to_str().unwrap(),
        "download",
    ]);
    env.tufctl(&args)
}

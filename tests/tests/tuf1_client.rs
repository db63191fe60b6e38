//! tufd's TUF 1.0 client (`tufctl tuf client`, the conformance-suite
//! command line) against repositories python-tuf's Metadata API writes,
//! good and hostile, served over loopback HTTP.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;
use tufd_tests::daemon::binary;
use tufd_tests::python;
use tufd_tests::static_http::{Mode, StaticHttp};

fn client(md: &Path, args: &[&str]) -> Output {
    Command::new(binary("tufctl"))
        .arg("tuf")
        .arg("client")
        .arg("--metadata-dir")
        .arg(md)
        .args(args)
        .output()
        .expect("tufctl runs")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn hostile_repos(dir: &Path) -> Value {
    let out = Command::new(python::python())
        .arg(python::script("hostile_repos.py"))
        .arg(dir)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "hostile_repos.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.join("scenarios.json")).unwrap()).unwrap()
}

#[test]
fn client_accepts_good_repositories_and_refuses_attacks() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("repos");
    let scenarios = hostile_repos(&repos);
    let server = StaticHttp::start(repos.clone());
    let mut checked = 0;
    for (name, s) in scenarios.as_object().unwrap() {
        let phases = s["phases"].as_u64().unwrap();
        let md = tmp.path().join(format!("client-{name}"));
        let targets = tmp.path().join(format!("targets-{name}"));
        let root = repos.join(name).join("phase1/metadata/1.root.json");
        let init = client(&md, &["init", root.to_str().unwrap()]);
        assert!(init.status.success(), "{name} init: {}", text(&init));
        let meta_url = format!("{}/metadata", server.url());
        let target_url = format!("{}/targets", server.url());
        for phase in 1..=phases {
            server.set_root(repos.join(name).join(format!("phase{phase}")));
            let last = phase == phases;
            let mut args = vec!["--metadata-url".to_owned(), meta_url.clone()];
            let downloads: Vec<&str> = s["download"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            let cmd = if last && !downloads.is_empty() {
                for t in &downloads {
                    args.extend(["--target-name".to_owned(), (*t).to_owned()]);
                }
                args.extend([
                    "--target-base-url".to_owned(),
                    target_url.clone(),
                    "--target-dir".to_owned(),
                    targets.display().to_string(),
                ]);
                "download"
            } else {
                "refresh"
            };
            args.push(cmd.to_owned());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = client(&md, &args);
            let expect_ok = !last || s["expect"] == "ok";
            assert_eq!(
                out.status.success(),
                expect_ok,
                "{name} phase {phase} {cmd}: {}",
                text(&out)
            );
            if !expect_ok {
                assert_eq!(out.status.code(), Some(1), "{name}: {}", text(&out));
                let why = s["why"].as_str().unwrap();
                assert!(
                    String::from_utf8_lossy(&out.stderr).contains(why),
                    "{name}: expected {why:?}: {}",
                    text(&out)
                );
            }
        }
        // Trusted metadata is kept under non-versioned names.
        assert!(md.join("root.json").exists(), "{name}");
        if s["expect"] == "ok" {
            assert!(md.join("timestamp.json").exists(), "{name}");
            assert!(md.join("snapshot.json").exists(), "{name}");
            assert!(md.join("targets.json").exists(), "{name}");
            for t in s["download"].as_array().unwrap() {
                let file = targets.join(t.as_str().unwrap().replace('/', "%2F"));
                assert!(file.exists(), "{name}: {} downloaded", file.display());
            }
        }
        checked += 1;
    }
    assert!(checked >= 12, "{checked} scenarios");

    // Endless and slow answers are cut off.
    let md = tmp.path().join("client-endless");
    let root = repos.join("good/phase1/metadata/1.root.json");
    assert!(
        client(&md, &["init", root.to_str().unwrap()])
            .status
            .success()
    );
    server.set_root(repos.join("good/phase1"));
    let meta_url = format!("{}/metadata", server.url());
    server.set_mode(Mode::Endless("timestamp.json".into()));
    let out = client(&md, &["--metadata-url", &meta_url, "refresh"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("more than 16384 bytes"),
        "{}",
        text(&out)
    );
    server.set_mode(Mode::Slow("snapshot.json".into()));
    let start = Instant::now();
    let out = client(
        &md,
        &[
            "--metadata-url",
            &meta_url,
            "--http-timeout",
            "2",
            "refresh",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no complete answer within"),
        "{}",
        text(&out)
    );
    assert!(start.elapsed().as_secs() < 20);
    server.set_mode(Mode::Files);
    let out = client(&md, &["--metadata-url", &meta_url, "refresh"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn download_skips_a_file_already_present_and_matching() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("repos");
    hostile_repos(&repos);
    let server = StaticHttp::start(repos.join("good/phase1"));
    let md = tmp.path().join("md");
    let targets = tmp.path().join("targets");
    let root = repos.join("good/phase1/metadata/1.root.json");
    assert!(
        client(&md, &["init", root.to_str().unwrap()])
            .status
            .success()
    );
    let meta_url = format!("{}/metadata", server.url());
    let target_url = format!("{}/targets", server.url());
    let download = |md: &Path| {
        client(
            md,
            &[
                "--metadata-url",
                &meta_url,
                "--target-name",
                "file.txt",
                "--target-base-url",
                &target_url,
                "--target-dir",
                targets.to_str().unwrap(),
                "download",
            ],
        )
    };
    assert!(download(&md).status.success());
    let file = targets.join("file.txt");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello from python-tuf");
    // The target files disappear from the server: the matching local file
    // is not fetched again.
    std::fs::remove_dir_all(repos.join("good/phase1/targets")).unwrap();
    let out = download(&md);
    assert!(out.status.success(), "{}", text(&out));
    // A local file that does not match is fetched (and now cannot be).
    std::fs::write(&file, b"tampered").unwrap();
    let out = download(&md);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

//! Large repositories: one `tufctl sign --tags-from` call of thousands of
//! tags, and `tufctl inspect` of the result streamed in parts, through the
//! real socket, a real notary-server and the real notary client. Beyond
//! gRPC's usual 4 MiB message with `TUFD_SCALE_TEST_TAGS=24000`; timing and
//! 100 000 tags are the scale bench's job (`cargo bench -p tufd-tests
//! --bench scale`).

use std::collections::HashMap;
use tufd_tests::daemon::TestEnv;
use tufd_tests::notary::NotaryServers;

/// Tags signed in one call. 3 000 tags of 120 characters make an inspect
/// answer of about 600 KiB: several streamed parts (256 KiB each), quick in
/// a debug build. `TUFD_SCALE_TEST_TAGS=24000` (release binaries advised)
/// takes the sign request and the unary answer each over 4 MiB (about 225
/// and 205 protobuf bytes a tag); the scale bench does that at 100 000.
fn tag_count() -> usize {
    std::env::var("TUFD_SCALE_TEST_TAGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

fn digest(n: usize) -> String {
    format!("{n:064x}")
}

/// Tag `n`: 120 characters.
fn tag(n: usize) -> String {
    format!("t{n:0>119}")
}

#[test]
fn one_sign_call_over_the_message_limit_and_a_streamed_inspect() {
    let servers = NotaryServers::start();
    let env = TestEnv::new();
    let _d = env.start_with(&servers.daemon_config(&env, ""));
    let gun = "localhost:5000/scale/app";
    env.tufctl(&["key", "generate", "alice"]).ok();
    env.tufctl(&["signer", "add", "alice", gun, "--key", "alice.pub"])
        .ok();

    let tags = tag_count();
    let list: String = (0..tags)
        .map(|n| format!("{gun}:{}@sha256:{}:{}\n", tag(n), digest(n), n + 1))
        .collect();
    let file = env.path().join("tags.txt");
    std::fs::write(&file, list).expect("write the tag list");
    let file = file.to_str().expect("utf-8 path");
    env.tufctl(&["sign", "--tags-from", file]).ok();

    // tufctl inspect: every tag, each with its own digest and signer.
    let inspect = env.tufctl(&["-o", "json", "inspect", gun]);
    assert!(inspect.stdout.len() > tags * 200, "about 200 bytes a tag");
    let inspect = inspect.json();
    let rows = inspect[0]["SignedTags"].as_array().expect("SignedTags");
    assert_eq!(rows.len(), tags);
    let rows: HashMap<&str, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["SignedTag"].as_str().unwrap_or(""), r))
        .collect();
    for n in [0, 1, tags / 2 + 1, tags - 1] {
        let row = rows[tag(n).as_str()];
        assert_eq!(row["Digest"], digest(n), "t{n}");
        assert_eq!(row["Signers"], serde_json::json!(["alice"]), "t{n}");
    }
    // One tag of it.
    let one = env
        .tufctl(&["-o", "json", "inspect", &format!("{gun}:{}", tag(42))])
        .json();
    assert_eq!(one[0]["SignedTags"].as_array().map(Vec::len), Some(1));

    // The real notary client reads the same tags.
    let out = servers.cli().run_ok(vec!["list", gun]);
    let listed = out
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|d| d.len() == 64))
        .count();
    assert_eq!(listed, tags, "notary list");
}

//! Repositories beyond gRPC's usual 4 MiB message: one `tufctl sign` call
//! larger than that (tags listed in a file), and `tufctl inspect` of the
//! result streamed in parts, through the real socket, a real notary-server
//! and the real notary client. Timing is the scale bench's job
//! (`cargo bench -p tufd-tests --bench scale`).

use std::collections::HashMap;
use tufd_tests::daemon::TestEnv;
use tufd_tests::notary::NotaryServers;

/// Enough tags of long names (docker allows 128 characters) that the sign
/// request and the unary inspect answer are each over 4 MiB (about 225
/// and 205 protobuf bytes a tag: 5.1 and 4.7 MiB); fewer tags than short
/// names would need, so the test stays quick in a debug build.
const TAGS: usize = 24_000;

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

    let list: String = (0..TAGS)
        .map(|n| format!("{gun}:{} sha256:{} {}\n", tag(n), digest(n), n + 1))
        .collect();
    assert!(list.len() > 4 * 1024 * 1024, "the request exceeds 4 MiB");
    let file = env.path().join("tags.txt");
    std::fs::write(&file, list).expect("write the tag list");
    let file = file.to_str().expect("utf-8 path");
    let t = std::time::Instant::now();
    env.tufctl(&["sign", "--tags-from", file]).ok();
    eprintln!("sign {:?}", t.elapsed());
    let t = std::time::Instant::now();

    // tufctl inspect: every tag, each with its own digest and signer.
    let inspect = env.tufctl(&["inspect", gun]);
    assert!(
        inspect.stdout.len() > 4 * 1024 * 1024,
        "the answer exceeds 4 MiB"
    );
    let inspect = inspect.json();
    let rows = inspect[0]["SignedTags"].as_array().expect("SignedTags");
    assert_eq!(rows.len(), TAGS);
    let rows: HashMap<&str, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["SignedTag"].as_str().unwrap_or(""), r))
        .collect();
    for n in [0, 1, 12_345, TAGS - 1] {
        let row = rows[tag(n).as_str()];
        assert_eq!(row["Digest"], digest(n), "t{n}");
        assert_eq!(row["Signers"], serde_json::json!(["alice"]), "t{n}");
    }
    eprintln!("inspect {:?}", t.elapsed());
    let t = std::time::Instant::now();
    // One tag of it, and the unary answer for a small repository still works.
    let one = env
        .tufctl(&["inspect", &format!("{gun}:{}", tag(42))])
        .json();
    assert_eq!(one[0]["SignedTags"].as_array().map(Vec::len), Some(1));

    eprintln!("inspect one {:?}", t.elapsed());
    let t = std::time::Instant::now();
    // The real notary client reads the same tags.
    let out = servers.cli().run_ok(vec!["list", gun]);
    let listed = out
        .stdout
        .lines()
        .filter(|l| l.split_whitespace().nth(1).is_some_and(|d| d.len() == 64))
        .count();
    eprintln!("notary list {:?}", t.elapsed());
    assert_eq!(listed, TAGS, "notary list");
}

//! Command-line syntax.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Talk to tufd, the hardware-token signing daemon for TUF and Docker
/// Content Trust.
///
/// Keys live on the daemon's tokens (PKCS#11 HSMs, SoftHSM2, YubiKeys);
/// tufctl sends intents and never sees private key material.
#[derive(Parser)]
#[command(name = "tufctl", version, about, long_about)]
pub struct Cli {
    /// The daemon's Unix socket.
    #[arg(
        long,
        global = true,
        env = "TUFD_SOCKET",
        default_value = "/run/tufd/tufd.sock"
    )]
    pub socket: PathBuf,

    /// Output format: text for people, json for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Text)]
    pub output: Format,

    /// Seconds to wait for the daemon's answer (0: no limit). Commands that
    /// may wait for a touch or a long batch (sign, revoke, signer, key
    /// generate/load/test/rotate) have no limit.
    #[arg(long, global = true, env = "TUFCTL_TIMEOUT", default_value_t = 120)]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// Output formats.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show the daemon's version and the state of its tokens.
    Status,
    /// Inspect the daemon's tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage signing keys (modelled on `docker trust key`).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Add or remove signers of repositories (`docker trust signer`).
    Signer {
        #[command(subcommand)]
        command: SignerCommand,
    },
    /// Sign tags of images with a key the daemon holds (`docker trust sign`).
    #[command(long_about = SIGN_ABOUT)]
    Sign(SignArgs),
    /// Remove the signature of a tag, or of every tag (`docker trust revoke`).
    #[command(long_about = REVOKE_ABOUT)]
    Revoke(RevokeArgs),
    /// Show the signed tags, signers and keys of repositories
    /// (`docker trust inspect`).
    #[command(long_about = INSPECT_ABOUT)]
    Inspect(InspectArgs),
    /// Verify tags before a pull and print their signed digests (what
    /// docker's content trust checked): enforced, passive or disabled.
    Verify(crate::verify::VerifyArgs),
    /// Make a repository whose signer role does not verify verify again;
    /// says which tags were dropped and why.
    #[command(long_about = REPAIR_ABOUT)]
    Repair {
        /// The repository (GUN).
        #[arg(value_name = "REPO")]
        repo: String,
    },
    /// The daemon's local trust store (the repositories it verified before).
    Trust {
        #[command(subcommand)]
        command: TrustCommand,
    },
    /// Ask the daemon's policy who may do what (nothing is done).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Check the daemon's audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// TUF 1.0 repositories on a directory, every key on the tokens
    /// (python-tuf compatible).
    Tuf(crate::tuf1::TufArgs),
}

/// `policy` subcommands.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Explain whether a user may do OPERATION on REPO, and by which rule
    /// (or which permission is missing). Nothing is done. Asking about
    /// another user needs the policy-check permission (root, admin group).
    ///
    /// Operations: inspect, verify, list, key-test, sign, revoke,
    /// key-generate, key-load, key-delete, token-unlock, signer-add,
    /// signer-remove, rotate, init, repair, policy-check.
    ///
    /// Example: tufctl policy check --user ci sign registry.example.com/team/app --role targets/releases
    Check {
        /// User name or uid (default: you).
        #[arg(long)]
        user: Option<String>,
        /// The operation.
        operation: String,
        /// The repository (GUN); omit for list and token-unlock.
        repo: Option<String>,
        /// A role the operation would write (repeatable).
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
}

/// `audit` subcommands.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Have the daemon check its audit log's hash chain against its head
    /// (root and the admin group). Offline: `tufd --audit-verify FILE`.
    Verify,
}

/// `trust` subcommands.
#[derive(Subcommand)]
pub enum TrustCommand {
    /// Remove a repository from the daemon's trust store: the next operation
    /// trusts the root the server serves then (trust on first use). For a
    /// repository whose server copy was deleted or re-created on purpose.
    Forget {
        /// The repository (GUN).
        #[arg(value_name = "REPO")]
        repo: String,
    },
}

const REPAIR_ABOUT: &str = "\
Make a repository whose signer role does not verify verify again.

A signer role (such as targets/releases) signed by a key its delegation no
longer lists hides every tag it holds from `docker pull` and `notary list`
(a signer removal that raced a sign with an older tufd, docker or notary
can leave a repository so). With a key the role still lists, the daemon
re-signs the role with its last verified content; without one, the targets
key stops delegating the role (add its signers again afterwards with
`tufctl signer add`). Tags in the broken file are never re-signed as they
are. The answer names every tag dropped and why.

Example:
  tufctl repair registry.example.com/team/app";

const SIGN_ABOUT: &str = "\
Sign tags of images with a key the daemon holds (`docker trust sign`).

Each REPO:TAG becomes a target named TAG with the manifest's sha256 digest
and size. As docker does, it is signed into every signer role whose key the
daemon holds: targets/releases (the role `docker pull` trusts) and the
signer's own targets/NAME; into targets with the repository key when the
repository has no signers. All tags of one repository are one transaction
and one publish; several repositories are signed in one call.

REPO is the fully qualified repository name (the Notary GUN), such as
localhost:5000/library/app or docker.io/library/alpine.

The digest is the image manifest's (what `docker push` prints as
`digest: sha256:…` and `size: N`). Without --digest the daemon reads the
manifest of each tag from the registry the repository names, as docker
does, and signs its sha256 and size.

Examples:
  tufctl sign registry.example.com/team/app:v1.2
  tufctl sign registry.example.com/team/app:v1.2 \\
      --digest sha256:0f8b2d4e5c1a…(64 hex digits) --size 527
  tufctl sign reg/app:v1 reg/app:latest reg/other:v1 --digest sha256:… --size 527
  tufctl sign reg/app:v1 --digest sha256:… --size 527 --output json";

const REVOKE_ABOUT: &str = "\
Remove the signature of a tag, or of every tag (`docker trust revoke`).

REPO:TAG removes TAG from every role that lists it (targets/releases,
signer roles, targets), so `docker pull` with content trust refuses it.
REPO alone removes every signed tag of the repository; that asks for
confirmation on a terminal and needs --yes otherwise.

Examples:
  tufctl revoke registry.example.com/team/app:v1.2
  tufctl revoke registry.example.com/team/app --yes";

const INSPECT_ABOUT: &str = "\
Show the signed tags, signers and keys of repositories
(`docker trust inspect`).

The daemon reads each repository from the notary server and verifies it
against the root it trusts. The default output is the JSON array `docker
trust inspect` prints, field for field (Name, SignedTags, Signers,
AdministrativeKeys), so scripts written for docker keep working. --pretty
prints docker's human form. Roles that expire within six months are
reported on stderr.

REPO:TAG shows only that tag, as docker does.

Examples:
  tufctl inspect registry.example.com/team/app
  tufctl inspect registry.example.com/team/app:v1.2 --pretty
  tufctl inspect reg/app reg/other | jq '.[].SignedTags[].SignedTag'";

const SIGNER_ADD_ABOUT: &str = "\
Add a signer to repositories (`docker trust signer add`).

The public key (a NAME.pub written by `tufctl key generate` or `docker trust
key generate`, or an X.509 certificate) is added as the role targets/NAME
and to targets/releases, both for all tags, so the signer's signatures
make tags pullable with content trust. A repository that does not exist
yet is initialized first: its root and repository (targets) keys are
generated on a token (--token), and the notary server keeps the snapshot
key unless --client-snapshot.

Examples:
  tufctl key generate alice
  tufctl signer add alice registry.example.com/team/app --key alice.pub
  tufctl signer add ci reg/app reg/other --key ci.pub --token yubihsm";

const SIGNER_REMOVE_ABOUT: &str = "\
Remove a signer from repositories (`docker trust signer remove`).

The signer's keys leave targets/NAME and targets/releases. Removing the
last key of targets/releases leaves the repository without pullable signed
tags; the daemon refuses that unless --force.

Examples:
  tufctl signer remove alice registry.example.com/team/app
  tufctl signer remove alice reg/app --force";

const ROTATE_ABOUT: &str = "\
Rotate a key of a repository (`notary key rotate`).

- root: a new root key and certificate on a token; the new root is signed
  by the old and the new key, so clients that trust the old root accept it.
- targets: a new repository key on a token (--token).
- snapshot: hand the snapshot key to the notary server (--server-managed),
  or a new key on a token.
- timestamp: the notary server makes a new timestamp key (always
  server-managed).

Examples:
  tufctl key rotate registry.example.com/team/app targets --token yubihsm
  tufctl key rotate reg/app snapshot --server-managed
  tufctl key rotate reg/app root";

/// `signer` subcommands.
#[derive(Subcommand)]
pub enum SignerCommand {
    /// Add a signer (its public key) to repositories.
    #[command(long_about = SIGNER_ADD_ABOUT)]
    Add {
        /// Signer name: lowercase letters, digits, '-' and '_' (not
        /// "releases"); the role becomes targets/NAME.
        name: String,
        /// Repositories (GUNs), e.g. registry.example.com/team/app.
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<String>,
        /// The signer's public key: NAME.pub (PEM PUBLIC KEY) or a PEM certificate.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Token for the root and repository keys of repositories this
        /// call initializes (default: the daemon's default token).
        #[arg(long)]
        token: Option<String>,
        /// When initializing, keep the snapshot key on the token instead of
        /// letting the notary server manage it.
        #[arg(long)]
        client_snapshot: bool,
    },
    /// Remove a signer from repositories.
    #[command(long_about = SIGNER_REMOVE_ABOUT)]
    Remove {
        /// Signer name (the role targets/NAME).
        name: String,
        /// Repositories (GUNs).
        #[arg(required = true, value_name = "REPO")]
        repos: Vec<String>,
        /// Allow removing the last key of targets/releases.
        #[arg(long, short = 'f')]
        force: bool,
    },
}

/// `sign` arguments.
#[derive(Args)]
pub struct SignArgs {
    /// Tags to sign, as REPO:TAG.
    #[arg(required_unless_present = "tags_from", value_name = "REPO:TAG")]
    pub tags: Vec<String>,
    /// Also sign the tags listed in FILE (`-`: stdin), one a line: REPO:TAG,
    /// or REPO:TAG DIGEST SIZE for a tag's own manifest. For batches too
    /// long for a command line (100 000 tags in one call).
    #[arg(long, value_name = "FILE")]
    pub tags_from: Option<PathBuf>,
    /// Manifest digest, sha256:<64 lowercase hex digits>; read from the
    /// registry when omitted.
    #[arg(long, requires = "size")]
    pub digest: Option<String>,
    /// Manifest size in bytes.
    #[arg(long, requires = "digest")]
    pub size: Option<u64>,
}

/// `revoke` arguments.
#[derive(Args)]
pub struct RevokeArgs {
    /// REPO:TAG to revoke one tag, REPO to revoke every tag.
    #[arg(value_name = "REPO[:TAG]")]
    pub reference: String,
    /// Do not ask for confirmation when revoking every tag (required when
    /// stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// `inspect` arguments.
#[derive(Args)]
pub struct InspectArgs {
    /// Repositories (GUNs), optionally with :TAG.
    #[arg(required = true, value_name = "REPO[:TAG]")]
    pub repos: Vec<String>,
    /// Print docker's human-friendly form instead of JSON.
    #[arg(long)]
    pub pretty: bool,
}

/// Repository roles whose keys can be rotated.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum RotateRole {
    Root,
    Targets,
    Snapshot,
    Timestamp,
}

impl RotateRole {
    /// The role name the daemon expects.
    pub fn as_str(self) -> &'static str {
        match self {
            RotateRole::Root => "root",
            RotateRole::Targets => "targets",
            RotateRole::Snapshot => "snapshot",
            RotateRole::Timestamp => "timestamp",
        }
    }
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// List tokens: state, label, serial and how many tufd keys each holds.
    List,
    /// Give a token its PIN (`pin = "prompt"` tokens are locked until then).
    ///
    /// The daemon verifies the PIN on the device and keeps it for the
    /// token's `pin_cache_seconds` (default 15 minutes). The PIN comes from
    /// --pin-file, else the TUFCTL_PIN environment variable, else a prompt.
    /// A wrong PIN reports the tries left. With few tries left the daemon
    /// presents a new PIN only if its configuration allows it
    /// (`allow_last_pin_try`); a token already unlocked is never asked to
    /// check another PIN.
    Unlock {
        /// Token name from the daemon configuration.
        name: String,
        /// File holding the PIN (first line).
        #[arg(long, value_name = "FILE")]
        pin_file: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Generate a key pair on a token and write NAME.pub.
    ///
    /// The private key is created on the token as sensitive and
    /// non-extractable. NAME.pub is a PEM public key with a `role: NAME`
    /// header, like `docker trust key generate` writes, ready for
    /// `signer add --key NAME.pub`.
    Generate {
        /// Key name (letters, digits, '.', '_', '-').
        name: String,
        /// Directory to write NAME.pub into.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[command(flatten)]
        target: TokenArg,
    },
    /// Import a private key file into a token.
    ///
    /// Accepts PKCS#8, SEC1 and encrypted PKCS#8 PEM files, including the
    /// key files docker and notary write (~/.docker/trust/private/*.key).
    /// The key is created on the token as sensitive and non-extractable;
    /// afterwards you can delete the file.
    ///
    /// The passphrase of an encrypted key comes from --passphrase-file, else
    /// the TUFCTL_KEY_PASSPHRASE environment variable, else a prompt.
    Load {
        /// The private key file.
        file: PathBuf,
        /// Key name; defaults to the file's `role:` header.
        #[arg(long)]
        name: Option<String>,
        /// File holding the passphrase (first line).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        #[command(flatten)]
        target: TokenArg,
    },
    /// List the keys on the daemon's tokens.
    List {
        /// Only keys on this token.
        #[arg(long)]
        token: Option<String>,
        /// Also ask each device whether it attests that the key was
        /// generated on it (YubiKey attestation; the facts it certifies).
        #[arg(long)]
        attestation: bool,
    },
    /// Destroy a key on its token. There is no undo.
    #[command(alias = "remove")]
    Rm {
        #[command(flatten)]
        key: KeyArg,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Check that the daemon can sign with a key: it signs a random
    /// challenge on the token and tufctl verifies the signature.
    Test {
        #[command(flatten)]
        key: KeyArg,
    },
    /// Rotate a repository key: root, targets, snapshot or timestamp.
    #[command(long_about = ROTATE_ABOUT)]
    Rotate {
        /// Repository (GUN).
        #[arg(value_name = "REPO")]
        repo: String,
        /// The role whose key is replaced.
        #[arg(value_enum)]
        role: RotateRole,
        /// Token for the new key (default: the daemon's default token).
        #[arg(long)]
        token: Option<String>,
        /// Let the notary server hold the new key (snapshot; implied for
        /// timestamp).
        #[arg(long)]
        server_managed: bool,
    },
}

/// Which token to use.
#[derive(Args)]
pub struct TokenArg {
    /// Token name from the daemon configuration (default: its default token).
    #[arg(long)]
    pub token: Option<String>,
}

/// Which key to act on.
#[derive(Args)]
pub struct KeyArg {
    /// Key name, or key ID (at least 8 hex digits).
    pub key: String,
    /// Repository (GUN) of a role key, such as root or targets.
    #[arg(long)]
    pub gun: Option<String>,
}

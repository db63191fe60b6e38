//! Who may do what: per-caller policy over operations, repositories and
//! roles.
//!
//! The caller is identified by the kernel ([`Caller`], from `SO_PEERCRED`).
//! Root and members of the daemon's admin group may do everything; anyone
//! else needs a rule granting the operation on a repository pattern and, for
//! operations that write roles, the roles. Without rules, everyone but root
//! and the admin group is refused.
//!
//! ```toml
//! [policy]
//! admin_group = "tufd-admin"   # the default; members may do everything
//!
//! [[policy.rule]]              # the CI runner signs releases of team repositories
//! users = ["ci"]               # user names or numeric IDs
//! groups = []                  # group names or numeric IDs (primary or supplementary)
//! repositories = ["registry.example.com/team/*"]
//! roles = ["targets/releases", "targets/ci"]   # default: every role
//! operations = ["sign", "revoke", "inspect"]
//! ```
//!
//! Operations: `inspect`, `verify`, `list` (key and token lists), `key-test`
//! (read-only: [`Operation::is_admin`] is false); `sign`, `revoke`; and the
//! administrative `key-generate`, `key-load`, `key-delete`, `token-unlock`,
//! `signer-add`, `signer-remove`, `rotate`, `init`, `repair`, `policy-check`
//! (asking about other users). `read` stands for the four read-only
//! operations, `admin` for every administrative one.
//!
//! Keys follow from roles: a repository key (`root`, `targets`, `snapshot`
//! of GUN) is the role of that name in that repository; a signer key NAME
//! is the role `targets/NAME` in any repository. Operations without a
//! repository (`list`, `token-unlock`) ignore `repositories`.
//!
//! TUF 1.0 repositories are named `tuf:NAME` (configured in `[tuf]`) or
//! `tuf:/canonical/path` (inside a configured root); `service/tuf1.rs`
//! maps each TUF operation to one of the operations above.

mod caller;
pub mod glob;

pub use caller::Caller;
use glob::Glob;
use serde::Deserialize;

/// An operation a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `inspect`: read and describe a repository.
    Inspect,
    /// `verify`: check a tag's signature.
    Verify,
    /// `key list`, `token list`.
    List,
    /// `key test`: the daemon signs a challenge with a key.
    KeyTest,
    /// `sign`: add tags to roles.
    Sign,
    /// `revoke`: remove tags from roles.
    Revoke,
    /// `key generate`.
    KeyGenerate,
    /// `key load`.
    KeyLoad,
    /// `key rm`.
    KeyDelete,
    /// `token unlock`.
    TokenUnlock,
    /// `signer add` (which initializes a repository that does not exist).
    SignerAdd,
    /// `signer remove`.
    SignerRemove,
    /// `key rotate`.
    Rotate,
    /// Initialize a repository.
    Init,
    /// Repair a repository's local state.
    Repair,
    /// `policy check` about another user.
    PolicyCheck,
}

impl Operation {
    /// Every operation, in the order of the documentation.
    pub const ALL: [Operation; 16] = [
        Operation::Inspect,
        Operation::Verify,
        Operation::List,
        Operation::KeyTest,
        Operation::Sign,
        Operation::Revoke,
        Operation::KeyGenerate,
        Operation::KeyLoad,
        Operation::KeyDelete,
        Operation::TokenUnlock,
        Operation::SignerAdd,
        Operation::SignerRemove,
        Operation::Rotate,
        Operation::Init,
        Operation::Repair,
        Operation::PolicyCheck,
    ];

    /// The name used in the configuration and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Inspect => "inspect",
            Operation::Verify => "verify",
            Operation::List => "list",
            Operation::KeyTest => "key-test",
            Operation::Sign => "sign",
            Operation::Revoke => "revoke",
            Operation::KeyGenerate => "key-generate",
            Operation::KeyLoad => "key-load",
            Operation::KeyDelete => "key-delete",
            Operation::TokenUnlock => "token-unlock",
            Operation::SignerAdd => "signer-add",
            Operation::SignerRemove => "signer-remove",
            Operation::Rotate => "rotate",
            Operation::Init => "init",
            Operation::Repair => "repair",
            Operation::PolicyCheck => "policy-check",
        }
    }

    /// Administrative operations change keys, tokens or who may sign.
    pub fn is_admin(self) -> bool {
        !matches!(
            self,
            Operation::Inspect
                | Operation::Verify
                | Operation::List
                | Operation::KeyTest
                | Operation::Sign
                | Operation::Revoke
        )
    }

    /// Read-only operations.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Operation::Inspect | Operation::Verify | Operation::List | Operation::KeyTest
        )
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Operation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Operation::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Operation::ALL.iter().map(|o| o.as_str()).collect();
                format!(
                    "unknown operation {s:?}; known: {}, read, admin",
                    names.join(", ")
                )
            })
    }
}

/// What a caller asks to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The operation.
    pub op: Operation,
    /// The repository (normalized GUN), when the operation has one.
    pub repository: Option<String>,
    /// Roles the operation writes or uses, when known before it runs.
    pub roles: Vec<String>,
}

impl Action {
    /// An operation on a repository.
    pub fn on(op: Operation, repository: &str) -> Self {
        Action {
            op,
            repository: Some(repository.to_owned()),
            roles: Vec::new(),
        }
    }

    /// An operation without a repository.
    pub fn global(op: Operation) -> Self {
        Action {
            op,
            repository: None,
            roles: Vec::new(),
        }
    }

    /// The operation on key NAME of repository GUN (empty GUN: a signer key,
    /// the role `targets/NAME` in any repository).
    pub fn key(op: Operation, name: &str, gun: &str) -> Self {
        if gun.is_empty() {
            Action {
                op,
                repository: None,
                roles: vec![format!("targets/{name}")],
            }
        } else {
            Action {
                op,
                repository: Some(gun.to_owned()),
                roles: vec![name.to_owned()],
            }
        }
    }

    /// With these roles.
    pub fn roles(mut self, roles: impl IntoIterator<Item = String>) -> Self {
        self.roles = roles.into_iter().collect();
        self
    }

    /// "sign on REPO (roles a, b)" for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("\"{}\"", self.op);
        if let Some(r) = &self.repository {
            s.push_str(&format!(" on {r}"));
        }
        if !self.roles.is_empty() {
            s.push_str(&format!(" (role {})", self.roles.join(", ")));
        }
        s
    }
}

/// Which roles an allowed caller may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleScope {
    /// Every role.
    All,
    /// Roles matching one of these patterns.
    Only(Vec<Glob>),
}

impl RoleScope {
    /// Whether `role` is in scope.
    pub fn allows(&self, role: &str) -> bool {
        match self {
            RoleScope::All => true,
            RoleScope::Only(globs) => globs.iter().any(|g| g.matches(role)),
        }
    }

    /// The patterns, for messages.
    pub fn describe(&self) -> String {
        match self {
            RoleScope::All => "every role".into(),
            RoleScope::Only(g) => g.iter().map(Glob::as_str).collect::<Vec<_>>().join(", "),
        }
    }
}

/// Why a caller was allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// uid 0.
    Root,
    /// A member of the admin group.
    AdminGroup(String),
    /// Rules (by index in the configuration, from 1).
    Rules(Vec<usize>),
}

/// The policy's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed, writing only roles in `roles`.
    Allow {
        /// Why.
        grant: Grant,
        /// The roles the caller may write with this operation.
        roles: RoleScope,
    },
    /// Refused; `needed` names the permission that would be needed.
    Deny {
        /// The permission, as a sentence.
        needed: String,
    },
}

impl Decision {
    /// One sentence for `policy check` and logs.
    pub fn explain(&self) -> String {
        match self {
            Decision::Allow { grant, roles } => {
                let why = match grant {
                    Grant::Root => "the caller is root".to_owned(),
                    Grant::AdminGroup(g) => format!("the caller is in the admin group {g}"),
                    Grant::Rules(r) => format!(
                        "policy rule {} (roles: {})",
                        r.iter()
                            .map(|i| format!("#{i}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        roles.describe()
                    ),
                };
                format!("allowed: {why}")
            }
            Decision::Deny { needed } => format!("denied: {needed}"),
        }
    }
}

/// One `[[policy.rule]]`.
#[derive(Debug, Clone)]
struct Rule {
    users: Vec<u32>,
    groups: Vec<u32>,
    repositories: Vec<Glob>,
    roles: RoleScope,
    operations: Vec<Operation>,
}

/// The policy: rules, and who administers the daemon.
#[derive(Debug, Clone)]
pub struct Policy {
    admin_group: Option<(String, u32)>,
    /// `admin_group` was not configured: the default group, when the
    /// user database knew it.
    admin_group_default: bool,
    rules: Vec<Rule>,
}

/// The `[policy]` table as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    admin_group: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    repositories: Vec<String>,
    roles: Option<Vec<String>>,
    operations: Vec<String>,
}

/// The admin group when the configuration names none.
pub const DEFAULT_ADMIN_GROUP: &str = "tufd-admin";

fn user_id(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("no user named {name:?} on this system")),
        Err(e) => Err(format!("looking up user {name:?}: {e}")),
    }
}

fn group_id(name: &str) -> Result<Option<u32>, String> {
    if let Ok(n) = name.parse() {
        return Ok(Some(n));
    }
    match nix::unistd::Group::from_name(name) {
        Ok(g) => Ok(g.map(|g| g.gid.as_raw())),
        Err(e) => Err(format!("looking up group {name:?}: {e}")),
    }
}

impl RawPolicy {
    /// Validates the rules and resolves user and group names (so a typo is
    /// an error at load time, not a silent refusal later).
    pub fn into_policy(self) -> Result<Policy, String> {
        self.into_policy_with(&group_id)
    }

    /// [`into_policy`](Self::into_policy), looking the admin group up with
    /// `admin_gid` (the user database; a fake one in tests).
    fn into_policy_with(
        self,
        admin_gid: &dyn Fn(&str) -> Result<Option<u32>, String>,
    ) -> Result<Policy, String> {
        let admin_group_default = self.admin_group.is_none();
        let admin_group = match self.admin_group {
            None => admin_gid(DEFAULT_ADMIN_GROUP)?.map(|g| (DEFAULT_ADMIN_GROUP.to_owned(), g)),
            Some(name) => {
                let gid = admin_gid(&name)?.ok_or_else(|| {
                    format!("policy.admin_group: no group named {name:?} on this system")
                })?;
                Some((name, gid))
            }
        };
        let mut rules = Vec::new();
        for (i, r) in self.rules.into_iter().enumerate() {
            let at = |e: String| format!("policy rule #{}: {e}", i + 1);
            if r.users.is_empty() && r.groups.is_empty() {
                return Err(at("give `users` or `groups` (or both)".into()));
            }
            let users = r
                .users
                .iter()
                .map(|u| user_id(u))
                .collect::<Result<_, _>>()
                .map_err(at)?;
            let groups = r
                .groups
                .iter()
                .map(|g| group_id(g)?.ok_or_else(|| format!("no group named {g:?} on this system")))
                .collect::<Result<_, _>>()
                .map_err(at)?;
            let repositories = r
                .repositories
                .iter()
                .map(|p| Glob::new(p))
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            let roles = match r.roles {
                None => RoleScope::All,
                Some(v) if v.iter().any(|r| r == "*" || r == "**") => RoleScope::All,
                Some(v) => RoleScope::Only(
                    v.iter()
                        .map(|p| Glob::new(p))
                        .collect::<Result<_, _>>()
                        .map_err(at)?,
                ),
            };
            let mut operations = Vec::new();
            for o in &r.operations {
                match o.as_str() {
                    "read" => operations.extend(Operation::ALL.into_iter().filter(|o| o.is_read())),
                    "admin" => {
                        operations.extend(Operation::ALL.into_iter().filter(|o| o.is_admin()))
                    }
                    other => operations.push(other.parse().map_err(at)?),
                }
            }
            if operations.is_empty() {
                return Err(at("`operations` is empty".into()));
            }
            if repositories.is_empty()
                && operations
                    .iter()
                    .any(|o| o != &Operation::List && o != &Operation::TokenUnlock)
            {
                return Err(at(
                    "`repositories` is empty: give patterns such as \"registry.example.com/team/*\" (\"**\" for all)".into(),
                ));
            }
            rules.push(Rule {
                users,
                groups,
                repositories,
                roles,
                operations,
            });
        }
        Ok(Policy {
            admin_group,
            admin_group_default,
            rules,
        })
    }
}

impl Default for Policy {
    /// Root and the default admin group (when it exists) only.
    fn default() -> Self {
        RawPolicy::default().into_policy().unwrap_or(Policy {
            admin_group: None,
            admin_group_default: true,
            rules: Vec::new(),
        })
    }
}

impl Policy {
    /// This policy, read again on a reload, to replace `previous`. When
    /// neither names an admin group and the default group (`tufd-admin`)
    /// is no longer found (the user database not answering, e.g. LDAP
    /// down), the group `previous` resolved is kept, with a warning:
    /// otherwise a passing lookup failure would leave the daemon with no
    /// admin group until the next reload, silently.
    pub fn reloaded(mut self, previous: &Policy) -> Policy {
        if self.admin_group.is_none()
            && self.admin_group_default
            && previous.admin_group_default
            && let Some((name, gid)) = &previous.admin_group
        {
            tracing::warn!(
                group = %name,
                gid,
                "policy reload: the admin group is not found in the user database now; keeping the one resolved before (set policy.admin_group to make it explicit)"
            );
            self.admin_group = previous.admin_group.clone();
        }
        self
    }

    /// The admin group as resolved, for the log: `NAME (gid N)`, or
    /// `none` (root administers alone).
    pub fn admin_group_description(&self) -> String {
        match &self.admin_group {
            Some((name, gid)) => format!("{name} (gid {gid})"),
            None => "none: root administers alone".into(),
        }
    }

    /// The admin group's name, when one exists.
    pub fn admin_group(&self) -> Option<&str> {
        self.admin_group.as_ref().map(|(n, _)| n.as_str())
    }

    /// Whether `caller` administers the daemon (root or the admin group).
    pub fn is_admin(&self, caller: &Caller) -> Option<Grant> {
        if caller.uid == 0 {
            return Some(Grant::Root);
        }
        match &self.admin_group {
            Some((name, gid)) if caller.in_group(*gid) => Some(Grant::AdminGroup(name.clone())),
            _ => None,
        }
    }

    /// Decides whether `caller` may do `action`.
    pub fn check(&self, caller: &Caller, action: &Action) -> Decision {
        if let Some(grant) = self.is_admin(caller) {
            return Decision::Allow {
                grant,
                roles: RoleScope::All,
            };
        }
        let mut matched = Vec::new();
        let mut globs = Vec::new();
        let mut all_roles = false;
        for (i, rule) in self.rules.iter().enumerate() {
            let who =
                rule.users.contains(&caller.uid) || rule.groups.iter().any(|g| caller.in_group(*g));
            if !who || !rule.operations.contains(&action.op) {
                continue;
            }
            if let Some(repo) = &action.repository
                && !rule.repositories.iter().any(|g| g.matches(repo))
            {
                continue;
            }
            matched.push(i + 1);
            match &rule.roles {
                RoleScope::All => all_roles = true,
                RoleScope::Only(g) => globs.extend(g.iter().cloned()),
            }
        }
        let scope = if all_roles {
            RoleScope::All
        } else {
            RoleScope::Only(globs)
        };
        let missing: Vec<&String> = action.roles.iter().filter(|r| !scope.allows(r)).collect();
        if matched.is_empty() || !missing.is_empty() {
            let needed = format!(
                "{} may not {}; it needs a [[policy.rule]] granting it (or a group of it) operation \"{}\"{}{} (or membership of the admin group{})",
                caller.describe(),
                action.describe(),
                action.op,
                action
                    .repository
                    .as_ref()
                    .map(|r| format!(" on a repository pattern matching {r}"))
                    .unwrap_or_default(),
                if missing.is_empty() {
                    String::new()
                } else {
                    format!(
                        " with role {}",
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                },
                self.admin_group()
                    .map(|g| format!(" {g}"))
                    .unwrap_or_default(),
            );
            return Decision::Deny { needed };
        }
        Decision::Allow {
            grant: Grant::Rules(matched),
            roles: scope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(uid: u32, gid: u32, groups: &[u32]) -> Caller {
        Caller {
            uid,
            gid,
            groups: groups.to_vec(),
            pid: None,
            exe: None,
            comm: None,
            user_name: None,
        }
    }

    fn policy(toml_text: &str) -> Policy {
        let raw: RawPolicy = toml::from_str(toml_text).unwrap();
        raw.into_policy().unwrap()
    }

    const CI: &str = r#"
admin_group = "0"
[[rule]]
users = ["1234"]
repositories = ["registry.example.com/team/*"]
roles = ["targets/releases", "targets/ci"]
operations = ["sign", "revoke", "read"]
[[rule]]
groups = ["4321"]
repositories = ["**"]
operations = ["inspect"]
"#;

    /// A reload during which the user database does not find the default
    /// admin group keeps the group resolved before; a configured group
    /// that is not found still refuses the reload, and a found one
    /// replaces the old.
    #[test]
    fn a_reload_that_cannot_resolve_the_default_admin_group_keeps_the_old_one() {
        let with = |gid: Option<u32>, text: &str| {
            let raw: RawPolicy = toml::from_str(text).unwrap();
            raw.into_policy_with(&move |name: &str| {
                Ok(if name == DEFAULT_ADMIN_GROUP {
                    gid
                } else {
                    name.parse().ok()
                })
            })
        };
        let start = with(Some(990), "").unwrap();
        assert_eq!(start.admin_group_description(), "tufd-admin (gid 990)");
        let admin = caller(1000, 1000, &[990]);
        assert!(start.is_admin(&admin).is_some());

        // NSS does not answer for tufd-admin during the reload.
        let reloaded = with(None, "").unwrap().reloaded(&start);
        assert_eq!(reloaded.admin_group_description(), "tufd-admin (gid 990)");
        assert!(reloaded.is_admin(&admin).is_some());
        // A policy that never had it stays without one.
        let none = with(None, "").unwrap();
        let still = with(None, "").unwrap().reloaded(&none);
        assert!(still.admin_group().is_none());
        assert!(still.admin_group_description().starts_with("none"));
        // An explicit group replaces the default; a configured group that
        // is not found refuses the reload.
        let explicit = with(None, "admin_group = \"77\"").unwrap().reloaded(&start);
        assert_eq!(explicit.admin_group_description(), "77 (gid 77)");
        assert!(with(None, "admin_group = \"ops\"").is_err());
        // Going back to the default from an explicit group takes what the
        // user database says now.
        let back = with(None, "").unwrap().reloaded(&explicit);
        assert!(back.admin_group().is_none());
    }

    #[test]
    fn root_and_admins_may_do_everything_and_others_nothing_by_default() {
        let p = policy("admin_group = \"77\"");
        let sign = Action::on(Operation::KeyDelete, "x/y");
        assert!(matches!(
            p.check(&caller(0, 0, &[]), &sign),
            Decision::Allow {
                grant: Grant::Root,
                ..
            }
        ));
        assert!(matches!(
            p.check(&caller(5, 5, &[77]), &sign),
            Decision::Allow {
                grant: Grant::AdminGroup(_),
                ..
            }
        ));
        let Decision::Deny { needed } = p.check(&caller(5, 5, &[]), &sign) else {
            panic!("uid 5 is nobody here");
        };
        assert!(needed.contains("\"key-delete\""), "{needed}");
        assert!(needed.contains("x/y"), "{needed}");
    }

    #[test]
    fn rules_grant_operations_on_repositories_and_roles() {
        let p = policy(CI);
        let ci = caller(1234, 1234, &[]);
        let sign = Action::on(Operation::Sign, "registry.example.com/team/app");
        let Decision::Allow { roles, .. } = p.check(&ci, &sign) else {
            panic!("ci signs team repositories");
        };
        assert!(roles.allows("targets/releases"));
        assert!(!roles.allows("targets/alice"));
        assert!(!roles.allows("targets"));
        // With explicit roles.
        assert!(matches!(
            p.check(&ci, &sign.clone().roles(["targets/ci".to_owned()])),
            Decision::Allow { .. }
        ));
        let Decision::Deny { needed } = p.check(&ci, &sign.clone().roles(["root".to_owned()]))
        else {
            panic!("ci never writes root");
        };
        assert!(needed.contains("with role root"), "{needed}");
        // Another repository, an admin operation.
        assert!(matches!(
            p.check(
                &ci,
                &Action::on(Operation::Sign, "registry.example.com/other/app")
            ),
            Decision::Deny { .. }
        ));
        assert!(matches!(
            p.check(
                &ci,
                &Action::on(Operation::SignerAdd, "registry.example.com/team/app")
            ),
            Decision::Deny { .. }
        ));
        // "read" includes key-test; a signer key is a role in any repository.
        assert!(matches!(
            p.check(&ci, &Action::key(Operation::KeyTest, "ci", "")),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            p.check(&ci, &Action::key(Operation::KeyTest, "alice", "")),
            Decision::Deny { .. }
        ));
        // Groups: supplementary membership counts.
        let reader = caller(99, 99, &[4321]);
        assert!(matches!(
            p.check(&reader, &Action::on(Operation::Inspect, "a/b")),
            Decision::Allow { .. }
        ));
        assert!(matches!(
            p.check(&reader, &Action::on(Operation::Sign, "a/b")),
            Decision::Deny { .. }
        ));
    }

    #[test]
    fn bad_rules_are_refused_with_a_reason() {
        for (text, want) in [
            (
                "[[rule]]\nusers=[\"0\"]\nrepositories=[\"**\"]\noperations=[\"fly\"]",
                "unknown operation",
            ),
            (
                "[[rule]]\nrepositories=[\"**\"]\noperations=[\"sign\"]",
                "`users` or `groups`",
            ),
            (
                "[[rule]]\nusers=[\"no-such-user-xyz\"]\nrepositories=[\"**\"]\noperations=[\"sign\"]",
                "no user named",
            ),
            (
                "[[rule]]\nusers=[\"0\"]\noperations=[\"sign\"]",
                "`repositories` is empty",
            ),
            ("admin_group = \"no-such-group-xyz\"", "no group named"),
        ] {
            let raw: RawPolicy = toml::from_str(text).unwrap();
            let err = raw.into_policy().unwrap_err();
            assert!(err.contains(want), "{want:?} not in {err:?}");
        }
    }
}

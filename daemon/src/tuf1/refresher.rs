//! The refresher: the daemon's own timer. It re-signs timestamp and
//! snapshot before they expire, and targets and every delegated role
//! (nested roles and hash bins) whose keys it can use without a person,
//! each in one new repository version (new files first, `timestamp.json`
//! last). A role whose keys need their holder is never signed silently:
//! the log warns when it comes due, `tuf status` says so, and the holder
//! re-signs it with `tufctl tuf refresh DIR --role ROLE`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::dir::Beneath;
use super::edit::BINS_PREFIX as BINS;
use super::files::{Layout, Online};
use super::refresh::{self, Scheduled};
use super::registry::{self, RepoRecord};
use super::sign::Signers;
use super::{REFRESH_TICK, RETRY_AFTER, RepoError, Tuf1, blocking};

impl Tuf1 {
    /// Re-signs what is due in `dir`: targets and delegated roles whose
    /// keys the daemon can use alone, then snapshot and timestamp (with
    /// `force`, timestamp always). `roles` names roles to re-sign now with
    /// any key the daemon holds (a holder at the token; `bins`: every hash
    /// bin). Returns when something is next due.
    pub async fn refresh(
        &self,
        at: &Beneath,
        force: bool,
        roles: Vec<String>,
    ) -> Result<OffsetDateTime, RepoError> {
        let layout = Layout::open(at, false)?;
        self.refresh_in(&layout, force, roles).await
    }

    /// [`Tuf1::refresh`], then the repository's status, on one opening of
    /// its directory.
    pub async fn refresh_status(
        &self,
        at: &Beneath,
        force: bool,
        roles: Vec<String>,
    ) -> Result<super::RepoStatus, RepoError> {
        let layout = super::open(at, false).await?;
        self.refresh_in(&layout, force, roles).await?;
        self.status_of(&layout, false).await
    }

    async fn refresh_in(
        &self,
        layout: &Layout,
        force: bool,
        roles: Vec<String>,
    ) -> Result<OffsetDateTime, RepoError> {
        let dir = layout.dir();
        let record = self.record(dir)?;
        // What is due is read without the repository's lock (published
        // files never change; reading every hash bin would hold up
        // writers); a change is made under it, on what is published then.
        let l = layout.clone();
        let online = match blocking(move || Online::read(&l)).await {
            Ok(online) if self.known_sound(dir, &online) => online,
            read => {
                // Checked once per version (and at the daemon's start): a
                // publish interrupted after its new root is completed.
                let completed = self.complete_interrupted(layout).await?;
                let online = match read {
                    Ok(online) if !completed => online,
                    Err(e) if !completed => return Err(e),
                    _ => {
                        let l = layout.clone();
                        blocking(move || Online::read(&l)).await?
                    }
                };
                self.mark_sound(dir, &online);
                online
            }
        };
        let now = OffsetDateTime::now_utc();
        let tree = self.tree(layout, &online.snapshot).await?;
        let scheduled = refresh::targets_roles(&tree, &online.root.metadata.signed, &record.expiry);
        let later = scheduled
            .iter()
            .filter(|s| s.due > now)
            .map(|s| s.due)
            .min();
        let (resign, signers) = if roles.is_empty() {
            self.due_roles(dir, &scheduled, now).await?
        } else {
            (named(&scheduled, roles)?, self.signers(dir).await?)
        };
        let lock = self.repo_lock(dir);
        let _guard = lock.lock().await;
        let next = if resign.is_empty() {
            self.refresh_online(layout, &record, force, online).await?
        } else {
            self.resign(layout, &record, resign, signers).await?
        };
        Ok(later.map_or(next, |l| l.min(next)))
    }

    /// The due roles the daemon can sign alone, and its keys for them;
    /// the others are warned about once per version.
    async fn due_roles(
        &self,
        dir: &Path,
        scheduled: &[Scheduled],
        now: OffsetDateTime,
    ) -> Result<(Vec<String>, Signers), RepoError> {
        let due: Vec<&Scheduled> = scheduled.iter().filter(|s| s.due <= now).collect();
        if due.is_empty() {
            return Ok((Vec::new(), Signers::default()));
        }
        let online = self.signers(dir).await?.unattended();
        let mut resign = Vec::new();
        for s in due {
            if online.can_sign(&s.keyids, s.threshold) {
                resign.push(s.role.clone());
                continue;
            }
            let first = self.warned.lock().expect("warned set").insert((
                dir.to_owned(),
                s.role.clone(),
                s.version,
            ));
            if first {
                tracing::warn!(
                    repository = %dir.display(),
                    role = %s.role,
                    expires = %s.expires,
                    "role {} expires at {} and its keys need their holder: the daemon does not sign it on its own; re-sign it with `tufctl tuf refresh {} --role {}` with its token present",
                    s.role,
                    s.expires,
                    dir.display(),
                    s.role
                );
            }
        }
        Ok((resign, online))
    }

    /// Re-signs `roles` (same content, next version, new expiry), then
    /// snapshot and timestamp, as one new version.
    async fn resign(
        &self,
        layout: &Layout,
        record: &RepoRecord,
        roles: Vec<String>,
        signers: Signers,
    ) -> Result<OffsetDateTime, RepoError> {
        let started = std::time::Instant::now();
        let summary = self
            .publish_locked(layout, record, signers, move |c| {
                roles.iter().try_for_each(|r| c.resign(r))
            })
            .await?;
        let dir = layout.dir();
        let l = layout.clone();
        let online = blocking(move || Online::read(&l)).await?;
        let detail = format!(
            "{summary}; timestamp v{} and snapshot v{}",
            online.timestamp.version(),
            online.snapshot.version()
        );
        tracing::info!(repository = %dir.display(), %detail, elapsed_ms = started.elapsed().as_millis() as u64, "roles re-signed");
        self.record_refresh(dir, detail)?;
        Ok(refresh::next_due(&online, &record.expiry))
    }

    /// Re-signs timestamp (and snapshot) if due, or timestamp with
    /// `force`; returns when they are next due. `online`: the published
    /// online roles as just read (read again under the writer's lock before
    /// anything is changed).
    async fn refresh_online(
        &self,
        layout: &Layout,
        record: &RepoRecord,
        force: bool,
        online: Online,
    ) -> Result<OffsetDateTime, RepoError> {
        let dir = layout.dir();
        let layout = layout.clone();
        let expiry = record.expiry.clone();
        let now = OffsetDateTime::now_utc();
        if !force && refresh::next_due(&online, &expiry) > now {
            return Ok(refresh::next_due(&online, &expiry));
        }
        let signers = self.signers(dir).await?;
        let started = std::time::Instant::now();
        let (next, refreshed) = blocking(move || {
            let _writer = layout.lock()?;
            // Read again under the file lock: another process may have
            // published since.
            let online = Online::read(&layout)?;
            let now = OffsetDateTime::now_utc();
            let Some((publish, refreshed)) =
                refresh::refresh(&layout, &online, &expiry, &signers, now, force)?
            else {
                return Ok((refresh::next_due(&online, &expiry), None));
            };
            publish.write(&layout, &online.referenced(&layout))?;
            let online = Online::read(&layout)?;
            Ok((refresh::next_due(&online, &expiry), Some(refreshed)))
        })
        .await?;
        if let Some(r) = refreshed {
            let detail = match r.snapshot {
                Some(s) => format!("timestamp v{} and snapshot v{}", r.timestamp, s),
                None => format!("timestamp v{}", r.timestamp),
            };
            tracing::info!(repository = %dir.display(), %detail, elapsed_ms = started.elapsed().as_millis() as u64, "online roles re-signed");
            self.record_refresh(dir, detail)?;
        }
        Ok(next)
    }

    fn record_refresh(&self, dir: &Path, detail: String) -> Result<(), RepoError> {
        self.registry.update(dir, |rec| {
            rec.last_refresh = Some(registry::Refresh {
                at: tufd_tuf::tuf1::Expires::at(OffsetDateTime::now_utc()),
                detail,
            });
            rec.last_error = None;
        })
    }

    /// The refresher: re-signs what every managed repository needs before
    /// it expires, on its own schedule, until the daemon stops.
    pub async fn run_refresher(self: Arc<Self>) {
        self.sweep_leftovers().await;
        loop {
            let now = OffsetDateTime::now_utc();
            let mut wait = REFRESH_TICK;
            for dir in self.registry.dirs() {
                // The registry records canonical paths: opened with no
                // link followed anywhere.
                let at = Beneath::absolute(&dir);
                let next = match self.refresh(&at, false, Vec::new()).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(repository = %dir.display(), error = %e, "refreshing the online roles failed; retrying");
                        let _ = self.registry.update(&dir, |rec| {
                            rec.last_error = Some(format!(
                                "{}: {e}",
                                registry::format_time(OffsetDateTime::now_utc())
                            ));
                        });
                        now + RETRY_AFTER
                    }
                };
                let until = (next - OffsetDateTime::now_utc()).max(time::Duration::ZERO);
                wait = wait.min(until.try_into().unwrap_or(Duration::ZERO));
            }
            // Never spin: at least a short pause between rounds.
            let wait = wait.max(Duration::from_millis(200));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
            }
        }
    }
}

impl Tuf1 {
    /// Removes the temporary files that writers killed before this start
    /// left in every recorded repository (partial metadata, partial
    /// copies of large targets), each under the repository's writer lock;
    /// a repository another process is writing is left for next time.
    async fn sweep_leftovers(&self) {
        for dir in self.registry.all_dirs() {
            let lock = self.repo_lock(&dir);
            let _guard = lock.lock().await;
            let at = Beneath::absolute(&dir);
            let swept = blocking(move || {
                let layout = Layout::open(&at, false)?;
                let _writer = layout.lock()?;
                layout.sweep_temp_files()
            })
            .await;
            match swept {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(repository = %dir.display(), files = n, "removed temporary files left by an interrupted write");
                }
                Err(e) => {
                    tracing::warn!(repository = %dir.display(), error = %e, "looking for temporary files left by an interrupted write failed");
                }
            }
        }
    }
}

/// The roles a person asked to re-sign, checked against the repository's
/// (`bins`: every hash bin).
fn named(scheduled: &[Scheduled], roles: Vec<String>) -> Result<Vec<String>, RepoError> {
    let mut out = Vec::new();
    for r in roles {
        let matched: Vec<String> = scheduled
            .iter()
            .filter(|s| s.role == r || (s.bin && (r == BINS || r == format!("{BINS}-*"))))
            .map(|s| s.role.clone())
            .collect();
        if matched.is_empty() {
            return Err(RepoError::NotFound(format!(
                "the repository has no targets role {r:?} to re-sign (snapshot and timestamp: `tuf refresh --force`)"
            )));
        }
        out.extend(matched);
    }
    Ok(out)
}

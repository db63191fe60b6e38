//! Repository directories and target source files opened without following
//! a symbolic link below the place the configuration allows.
//!
//! A request's repository is checked once ([`super::places`]) and then
//! opened once, as a directory handle, from the configured directory it
//! lies in (a `[tuf] roots` entry, a `sources` directory, a configured
//! repository's directory: administrator configuration, which may be
//! reached through links). Every component below it is opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, or one at a time with
//! `openat(O_NOFOLLOW)` where the kernel lacks openat2. Every later read,
//! write, rename and `mkdir` of the request goes through that handle
//! ([`Dir`]), so a member who can write below a root cannot swap a checked
//! directory for a link to a repository the policy keeps them out of: the
//! swap is refused, or the request keeps writing where it was checked.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::error::RepoError;

/// Set once openat2 was found missing (ENOSYS: an old kernel, a seccomp
/// filter); later opens go straight to the per-component walk, which
/// refuses the same paths.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A place named by the configured directory it lies in (`base`, opened as
/// configured) and the plain components below it (`rel`, opened without
/// following links; empty for the configured directory itself).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Beneath {
    base: PathBuf,
    rel: PathBuf,
}

impl Beneath {
    /// `rel` below `base`; `rel` must be relative, without `..`.
    pub fn new(base: PathBuf, rel: PathBuf) -> Self {
        Self { base, rel }
    }

    /// An absolute, canonical path with no link anywhere (the registry's
    /// record of a repository, opened by the refresher).
    pub fn absolute(path: &Path) -> Self {
        let rel = path.strip_prefix("/").unwrap_or(path).to_owned();
        Self::new(PathBuf::from("/"), rel)
    }

    /// The full path (for messages, logs and keys).
    pub fn path(&self) -> PathBuf {
        if self.rel.as_os_str().is_empty() {
            self.base.clone()
        } else {
            self.base.join(&self.rel)
        }
    }

    fn open_base(&self) -> Result<OwnedFd, RepoError> {
        let fd = rustix::fs::open(
            &self.base,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RepoError::io(&self.base, "opening the configured directory")(e.into()))?;
        Ok(fd)
    }

    /// Opens the directory (with `create`, creating it and any missing
    /// component below `base`).
    pub fn open_dir(&self, create: bool) -> Result<Dir, RepoError> {
        let base = self.open_base()?;
        let fd = open_dir_in(base.as_fd(), &self.rel, create, use_openat2())
            .map_err(|e| explain(base.as_fd(), &self.base, &self.rel, e, "opening"))?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: self.path(),
        })
    }

    /// Opens the file for reading.
    pub fn open_file(&self) -> Result<File, RepoError> {
        let base = self.open_base()?;
        open_file_in(base.as_fd(), &self.rel, use_openat2())
            .map_err(|e| explain(base.as_fd(), &self.base, &self.rel, e, "opening"))
    }
}

fn use_openat2() -> bool {
    !NO_OPENAT2.load(Ordering::Relaxed)
}

/// An open repository directory (or a directory in one).
#[derive(Debug, Clone)]
pub struct Dir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

impl Dir {
    /// The path it was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail<'a>(
        &'a self,
        rel: &'a Path,
        action: &'static str,
    ) -> impl FnOnce(Errno) -> RepoError + 'a {
        move |e| explain(self.fd.as_fd(), &self.path, rel, e, action)
    }

    /// Opens file `rel` (below this directory) for reading.
    pub fn open_file(&self, rel: &Path) -> Result<File, RepoError> {
        open_file_in(self.fd.as_fd(), rel, use_openat2()).map_err(self.fail(rel, "opening"))
    }

    /// Reads file `rel` whole.
    pub fn read(&self, rel: &Path) -> Result<Vec<u8>, RepoError> {
        let mut f = self.open_file(rel)?;
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut out)
            .map_err(RepoError::io(&self.path.join(rel), "reading"))?;
        Ok(out)
    }

    /// Whether `rel` exists (a link there counts as missing).
    pub fn exists(&self, rel: &Path) -> bool {
        // O_PATH | O_NOFOLLOW opens a link itself: look at what was opened.
        open_in(
            self.fd.as_fd(),
            rel,
            OFlags::PATH,
            Mode::empty(),
            use_openat2(),
        )
        .and_then(|fd| rustix::fs::fstat(&fd))
        .is_ok_and(|st| !rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink())
    }

    /// Opens (with `create`, makes) directory `rel` below this one.
    pub fn subdir(&self, rel: &Path, create: bool) -> Result<Dir, RepoError> {
        let fd = open_dir_in(self.fd.as_fd(), rel, create, use_openat2())
            .map_err(self.fail(rel, "opening the directory"))?;
        Ok(Dir {
            fd: Arc::new(fd),
            path: self.path.join(rel),
        })
    }

    /// Opens (creating it, mode 0644 less the daemon's umask: 0600) file
    /// `name` of this directory for writing, without truncating it (a lock
    /// file, nobody else's to lock).
    pub fn create_file(&self, name: &str) -> Result<File, RepoError> {
        let rel = Path::new(name);
        rustix::fs::openat(
            self.fd.as_fd(),
            name,
            OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map(File::from)
        .map_err(self.fail(rel, "opening"))
    }

    /// Writes file `rel` atomically: a temporary file in its directory
    /// (made as needed), filled by `fill`, fsync, mode 0644 (files are
    /// served to the world), rename over `rel`, fsync of the directory.
    /// The temporary file is removed when anything fails.
    pub fn write_with(
        &self,
        rel: &Path,
        fill: impl FnOnce(&mut File) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        self.write_with_mode(rel, SERVED_FILE_MODE, fill)
    }

    /// [`write_with`](Self::write_with) leaving the file with `mode`.
    fn write_with_mode(
        &self,
        rel: &Path,
        mode: u32,
        fill: impl FnOnce(&mut File) -> Result<(), RepoError>,
    ) -> Result<(), RepoError> {
        let (parent, name) = split(rel).ok_or_else(|| {
            RepoError::Internal(format!(
                "{}: not a file name",
                self.path.join(rel).display()
            ))
        })?;
        let dir = match parent {
            Some(p) => self.subdir(p, true)?,
            None => self.clone(),
        };
        let target = self.path.join(rel);
        let tmp = temp_name();
        let mut file = rustix::fs::openat(
            dir.fd.as_fd(),
            &tmp,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map(File::from)
        .map_err(|e| RepoError::io(dir.path(), "creating a temporary file")(e.into()))?;
        let written = fill(&mut file)
            .and_then(|()| file.sync_all().map_err(RepoError::io(&target, "writing")))
            .and_then(|()| {
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(|e| RepoError::io(&target, "setting the mode")(e.into()))
            })
            .and_then(|()| {
                rustix::fs::renameat(dir.fd.as_fd(), &tmp, dir.fd.as_fd(), name)
                    .map_err(|e| RepoError::io(&target, "renaming into place")(e.into()))
            });
        if written.is_err() {
            let _ = rustix::fs::unlinkat(dir.fd.as_fd(), &tmp, AtFlags::empty());
            return written;
        }
        rustix::fs::fsync(dir.fd.as_fd())
            .map_err(|e| RepoError::io(dir.path(), "syncing the directory")(e.into()))
    }

    /// Writes `bytes` to file `rel` atomically (see [`Dir::write_with`]).
    pub fn write_atomic(&self, rel: &Path, bytes: &[u8]) -> Result<(), RepoError> {
        let target = self.path.join(rel);
        self.write_with(rel, |f| {
            f.write_all(bytes)
                .map_err(RepoError::io(&target, "writing"))
        })
    }

    /// [`write_atomic`](Self::write_atomic) for the daemon's own state
    /// (not served): the file is left 0600.
    pub fn write_private(&self, rel: &Path, bytes: &[u8]) -> Result<(), RepoError> {
        let target = self.path.join(rel);
        self.write_with_mode(rel, 0o600, |f| {
            f.write_all(bytes)
                .map_err(RepoError::io(&target, "writing"))
        })
    }
}

impl Dir {
    /// Removes the temporary files a writer that died left in this
    /// directory and every directory below it (regular files named as
    /// [`Dir::write_with`] names them, `.tufd-PID-N-NANOS`; nothing else),
    /// following no link; returns how many. Call it with the repository's
    /// writer lock held, when no write can be under way.
    pub fn sweep_temp_files(&self) -> Result<u64, RepoError> {
        sweep(self.fd.as_fd(), &self.path, 0)
    }
}

/// How deep [`Dir::sweep_temp_files`] descends (a target name of 1 024
/// bytes has at most 512 directories; each level holds a descriptor).
const SWEEP_DEPTH: usize = 128;

fn sweep(dir: BorrowedFd<'_>, path: &Path, depth: usize) -> Result<u64, RepoError> {
    let fail = |e: Errno| RepoError::io(path, "looking for leftover temporary files")(e.into());
    let mut temps = Vec::new();
    let mut subdirs = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir).map_err(fail)? {
        let entry = entry.map_err(fail)?;
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let kind = match entry.file_type() {
            rustix::fs::FileType::Unknown => {
                rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| rustix::fs::FileType::from_raw_mode(st.st_mode))
                    .map_err(fail)?
            }
            kind => kind,
        };
        match kind {
            rustix::fs::FileType::RegularFile if is_temp_name(name.to_bytes()) => {
                temps.push(name.to_owned());
            }
            rustix::fs::FileType::Directory => subdirs.push(name.to_owned()),
            _ => {}
        }
    }
    let mut swept = 0;
    for name in &temps {
        match rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty()) {
            Ok(()) => swept += 1,
            Err(Errno::NOENT) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    if swept > 0 {
        rustix::fs::fsync(dir).map_err(fail)?;
    }
    if depth >= SWEEP_DEPTH {
        return Ok(swept);
    }
    for name in subdirs {
        let sub = rustix::fs::openat(
            dir,
            name.as_c_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let sub_path = path.join(OsStr::from_bytes(name.to_bytes()));
        match sub {
            Ok(fd) => swept += sweep(fd.as_fd(), &sub_path, depth + 1)?,
            // Gone, or replaced by a link since it was listed.
            Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR) => {}
            Err(e) => {
                return Err(RepoError::io(
                    &sub_path,
                    "looking for leftover temporary files",
                )(e.into()));
            }
        }
    }
    Ok(swept)
}

/// Whether `name` is one [`temp_name`] makes: `.tufd-` and three decimal
/// numbers between dashes.
fn is_temp_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b".tufd-") else {
        return false;
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'-').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
}

/// A fresh temporary name (`.tufd-PID-N-NANOS`).
fn temp_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        ".tufd-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The plain components of `rel`; `None` when it has `..`, a root or
/// nothing but `.`.
fn plain(rel: &Path) -> Option<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// `rel` as (its directory part, its file name).
fn split(rel: &Path) -> Option<(Option<&Path>, &OsStr)> {
    let parts = plain(rel)?;
    let name = *parts.last()?;
    let parent = rel.parent().filter(|p| !p.as_os_str().is_empty());
    Some((parent, name))
}

/// Opens `rel` below `dir` with `flags`, following no link: openat2
/// (when `openat2`, and the kernel has it), else a walk of `openat`s.
fn open_in(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    mode: Mode,
    openat2: bool,
) -> Result<OwnedFd, Errno> {
    let parts = plain(rel).ok_or(Errno::XDEV)?;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if openat2 {
        let path: &Path = if parts.is_empty() {
            Path::new(".")
        } else {
            rel
        };
        match rustix::fs::openat2(
            dir,
            path,
            flags,
            mode,
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
        ) {
            Err(Errno::NOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            // Some seccomp profiles refuse syscalls they do not know with
            // EPERM; the walk then gives the real answer.
            Err(Errno::PERM) => {}
            other => return other,
        }
    }
    let Some((last, parents)) = parts.split_last() else {
        return rustix::fs::openat(dir, ".", flags, mode);
    };
    let mut cur: Option<OwnedFd> = None;
    for part in parents {
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        let next = rustix::fs::openat(
            at,
            *part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        cur = Some(next);
    }
    let at = cur.as_ref().map_or(dir, |f| f.as_fd());
    rustix::fs::openat(at, *last, flags, mode)
}

fn open_file_in(dir: BorrowedFd<'_>, rel: &Path, openat2: bool) -> Result<File, Errno> {
    // O_NONBLOCK: opening a FIFO for reading would wait for a writer (a
    // request frozen on a file a caller named); it changes nothing for a
    // regular file.
    let fd = open_in(
        dir,
        rel,
        OFlags::RDONLY | OFlags::NONBLOCK,
        Mode::empty(),
        openat2,
    )?;
    let file = File::from(fd);
    // A FIFO or device would block or never end: only regular files.
    match file.metadata() {
        Ok(m) if m.is_file() => Ok(file),
        Ok(_) => Err(Errno::INVAL),
        Err(e) => Err(Errno::from_io_error(&e).unwrap_or(Errno::IO)),
    }
}

/// The mode of a file tufd writes into a repository (served to the world).
const SERVED_FILE_MODE: u32 = 0o644;

/// The mode of a directory tufd makes in a repository: set explicitly,
/// since the daemon's umask (077, for its state directory) would leave it
/// 0700. 0750 is what the daemon's former umask (027) made of its 0755.
const SERVED_DIR_MODE: u32 = 0o750;

/// Opens directory `rel` below `dir`; with `create`, makes each missing
/// component (mode [`SERVED_DIR_MODE`]) on the way, each opened without
/// following links, and syncs the directory it was made in.
fn open_dir_in(
    dir: BorrowedFd<'_>,
    rel: &Path,
    create: bool,
    openat2: bool,
) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY;
    match open_in(dir, rel, flags, Mode::empty(), openat2) {
        Err(Errno::NOENT) if create => {}
        other => return other,
    }
    let parts = plain(rel).ok_or(Errno::XDEV)?;
    let mut cur: Option<OwnedFd> = None;
    for part in parts {
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        let made = match rustix::fs::mkdirat(at, part, Mode::from_raw_mode(SERVED_DIR_MODE)) {
            // The new directory's entry is made durable in its parent, so
            // files renamed into it later cannot vanish with it in a
            // crash after their own directory was synced.
            Ok(()) => {
                rustix::fs::fsync(at)?;
                true
            }
            Err(Errno::EXIST) => false,
            Err(e) => return Err(e),
        };
        let next = rustix::fs::openat(
            at,
            part,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        if made {
            rustix::fs::fchmod(&next, Mode::from_raw_mode(SERVED_DIR_MODE))?;
        }
        cur = Some(next);
    }
    cur.map_or_else(
        || rustix::fs::openat(dir, ".", flags | OFlags::CLOEXEC, Mode::empty()),
        Ok,
    )
}

/// An error opening `rel` below `base` as a person can act on it: a link
/// (or `..`) is named and refused; anything else is an I/O error.
fn explain(
    dir: BorrowedFd<'_>,
    base: &Path,
    rel: &Path,
    e: Errno,
    action: &'static str,
) -> RepoError {
    let Some(parts) = plain(rel) else {
        return RepoError::Refused(format!(
            "{}: tufd opens only plain names below {} (no '..')",
            base.join(rel).display(),
            base.display()
        ));
    };
    if matches!(e, Errno::LOOP | Errno::NOTDIR | Errno::XDEV) {
        let mut prefix = PathBuf::new();
        for part in parts {
            prefix.push(part);
            match rustix::fs::statat(dir, &prefix, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if rustix::fs::FileType::from_raw_mode(st.st_mode).is_symlink() => {
                    return RepoError::Refused(format!(
                        "{}: a symbolic link below {}; tufd follows none there (put the real directory or file there, or configure the repository as a [[tuf.repository]])",
                        base.join(&prefix).display(),
                        base.display()
                    ));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    if e == Errno::INVAL {
        return RepoError::InvalidRequest(format!(
            "{}: not a regular file",
            base.join(rel).display()
        ));
    }
    RepoError::io(&base.join(rel), action)(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    struct Tree {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        base: OwnedFd,
    }

    /// root/a/b/repo/metadata/x.json, root/other/secret, and links.
    fn tree() -> Tree {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("a/b/repo/metadata")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("a/b/repo/metadata/x.json"), b"x").unwrap();
        std::fs::write(root.join("other/secret"), b"secret").unwrap();
        symlink(root.join("a"), root.join("mid")).unwrap();
        symlink(root.join("a/b/repo"), root.join("a/b/last")).unwrap();
        symlink(
            root.join("other/secret"),
            root.join("a/b/repo/metadata/y.json"),
        )
        .unwrap();
        let base = rustix::fs::open(&root, OFlags::DIRECTORY, Mode::empty()).unwrap();
        Tree {
            _tmp: tmp,
            root,
            base,
        }
    }

    fn both(check: impl Fn(&Tree, bool)) {
        for openat2 in [true, false] {
            check(&tree(), openat2);
        }
    }

    #[test]
    fn plain_nested_paths_open() {
        both(|t, o2| {
            let fd = open_dir_in(t.base.as_fd(), Path::new("a/b/repo"), false, o2).unwrap();
            let mut f = open_file_in(fd.as_fd(), Path::new("metadata/x.json"), o2).unwrap();
            let mut s = String::new();
            std::io::Read::read_to_string(&mut f, &mut s).unwrap();
            assert_eq!(s, "x");
            // Created on the way, component by component.
            open_dir_in(t.base.as_fd(), Path::new("a/new/deeper"), true, o2).unwrap();
            assert!(t.root.join("a/new/deeper").is_dir());
        });
    }

    #[test]
    fn a_fifo_is_refused_at_once_not_waited_on() {
        both(|t, o2| {
            let fifo = t.root.join("a/fifo");
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &fifo,
                rustix::fs::FileType::Fifo,
                Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
            let base = t.base.try_clone().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(open_file_in(base.as_fd(), Path::new("a/fifo"), o2).err());
            });
            let got = rx.recv_timeout(std::time::Duration::from_secs(5));
            if got.is_err() {
                // Release the blocked open before failing.
                let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            }
            assert_eq!(
                got,
                Ok(Some(Errno::INVAL)),
                "({o2}) the open waited for a writer"
            );
        });
    }

    #[test]
    fn links_and_dotdot_are_refused() {
        both(|t, o2| {
            for (rel, create) in [
                ("mid/b/repo", false),
                ("mid/b/new", true),
                ("a/b/last", false),
                ("a/b/last/metadata", true),
            ] {
                let e = open_dir_in(t.base.as_fd(), Path::new(rel), create, o2).unwrap_err();
                let why = explain(t.base.as_fd(), &t.root, Path::new(rel), e, "opening");
                assert!(
                    matches!(&why, RepoError::Refused(m) if m.contains("a symbolic link below")),
                    "{rel} ({o2}): {why}"
                );
            }
            assert!(!t.root.join("a/b/new").exists());
            let e = open_file_in(t.base.as_fd(), Path::new("a/b/repo/metadata/y.json"), o2)
                .unwrap_err();
            let why = explain(
                t.base.as_fd(),
                &t.root,
                Path::new("a/b/repo/metadata/y.json"),
                e,
                "opening",
            );
            assert!(
                why.to_string().contains("metadata/y.json: a symbolic link"),
                "{why}"
            );
            let dotdot = Path::new("a/../other/secret");
            let e = open_file_in(t.base.as_fd(), dotdot, o2).unwrap_err();
            let why = explain(t.base.as_fd(), &t.root, dotdot, e, "opening");
            assert!(why.to_string().contains("no '..'"), "{why}");
        });
    }

    #[test]
    fn only_the_daemons_own_leftover_temp_files_are_swept() {
        let t = tree();
        let repo = Beneath::new(t.root.clone(), "a/b/repo".into())
            .open_dir(false)
            .unwrap();
        let r = t.root.join("a/b/repo");
        std::fs::create_dir_all(r.join("targets/dir/sub")).unwrap();
        let leftovers = [
            "metadata/.tufd-123-0-456",
            "targets/dir/sub/.tufd-99999-17-1",
            ".tufd-1-2-3",
        ];
        let kept = [
            "metadata/.tufd-123-0",
            "metadata/.tufd-x-0-1",
            "metadata/.tufd.lock",
            "targets/dir/.tufd-1-2-3.txt",
            "targets/dir/sub/ab.tufd-1-2-3",
            "metadata/1.root.json",
        ];
        for f in leftovers.iter().chain(&kept) {
            std::fs::write(r.join(f), b"x").unwrap();
        }
        // A directory with the pattern's name, and a link to a file
        // outside: neither is touched, nor anything behind the link.
        std::fs::create_dir(r.join("targets/.tufd-5-5-5")).unwrap();
        std::fs::write(t.root.join("other/.tufd-7-7-7"), b"x").unwrap();
        symlink(t.root.join("other"), r.join("targets/out")).unwrap();
        symlink(
            t.root.join("other/.tufd-7-7-7"),
            r.join("targets/.tufd-8-8-8"),
        )
        .unwrap();
        assert_eq!(repo.sweep_temp_files().unwrap(), 3);
        for f in leftovers {
            assert!(!r.join(f).exists(), "{f} left");
        }
        for f in kept {
            assert!(r.join(f).exists(), "{f} swept");
        }
        assert!(r.join("targets/.tufd-5-5-5").is_dir());
        assert!(t.root.join("other/.tufd-7-7-7").exists());
        assert!(r.join("targets/.tufd-8-8-8").is_symlink());
        assert_eq!(repo.sweep_temp_files().unwrap(), 0);
    }

    #[test]
    fn writes_go_through_the_handle_and_leave_no_temp_files() {
        let t = tree();
        let repo = Beneath::new(t.root.clone(), "a/b/repo".into())
            .open_dir(false)
            .unwrap();
        repo.write_atomic(Path::new("targets/x/1.f"), b"one")
            .unwrap();
        repo.write_atomic(Path::new("targets/x/1.f"), b"two")
            .unwrap();
        assert_eq!(repo.read(Path::new("targets/x/1.f")).unwrap(), b"two");
        // The directory is swapped for a link after it was opened: the
        // write lands in the directory opened, never through the link.
        std::fs::rename(t.root.join("a/b/repo"), t.root.join("a/b/moved")).unwrap();
        symlink(t.root.join("other"), t.root.join("a/b/repo")).unwrap();
        repo.write_atomic(Path::new("metadata/z.json"), b"z")
            .unwrap();
        assert!(t.root.join("a/b/moved/metadata/z.json").exists());
        assert_eq!(std::fs::read_dir(t.root.join("other")).unwrap().count(), 1);
        // A failed fill leaves nothing behind.
        let e = repo.write_with(Path::new("metadata/w.json"), |_| {
            Err(RepoError::Internal("no".into()))
        });
        assert!(e.is_err());
        let names: Vec<_> = std::fs::read_dir(t.root.join("a/b/moved/metadata"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with(".tufd-")), "{names:?}");
        // Opening it again by path now meets the link.
        let e = Beneath::new(t.root.clone(), "a/b/repo".into())
            .open_dir(false)
            .unwrap_err();
        assert!(
            e.to_string().contains("a/b/repo: a symbolic link below"),
            "{e}"
        );
    }
}

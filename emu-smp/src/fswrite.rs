//! Calls that would change the file system (mkdir, unlink, rename, link, symlink,
//! mknod, chmod, chown, truncate, utimensat and their `*at` forms). emu never writes a
//! host file: the host's files the guest may see (`--allow-read`) are a read-only
//! mount, so these calls fail as they do on a read-only file system, with Linux's order
//! of checks (fs/namei.c, fs/open.c, fs/utimes.c): argument checks, then the lookup of
//! the parent directory (`filename_parentat`: ENOENT, ENOTDIR), then what the last
//! component is (`filename_create`: EEXIST; `do_rmdir`: EINVAL, ENOTEMPTY, EBUSY), and
//! only then `mnt_want_write`, which is EROFS. Calls on an existing path look it up
//! first (`user_path_at`) and are EROFS after their own checks (`vfs_truncate`: EISDIR,
//! EINVAL). Paths outside `--allow-read` are EACCES, whether or not they exist, as for
//! `open`; the files emu synthesizes (/dev/null, /proc/self/..., /sys/...) cannot be
//! changed (EPERM, as procfs answers a chmod).

use crate::fs::errno::*;
use crate::fs::{Object, Resolved};
use crate::machine::Machine;
use std::path::{Path, PathBuf};

/// What the last component of a path is (`enum last_type` of fs/namei.c).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Last {
    /// A name, and whether the path ended with a slash after it.
    Norm(String, bool),
    /// ".".
    Dot,
    /// "..".
    DotDot,
    /// The path is "/".
    Root,
}

/// Splits an absolute path into its parent directory and its last component
/// (`filename_parentat`).
pub(crate) fn split_last(abs: &str) -> (String, Last) {
    let trimmed = abs.trim_end_matches('/');
    if trimmed.is_empty() {
        return ("/".into(), Last::Root);
    }
    let slash = trimmed.len() < abs.len();
    let (parent, name) = match trimmed.rfind('/') {
        Some(0) => ("/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (".", trimmed),
    };
    let last = match name {
        "." => Last::Dot,
        ".." => Last::DotDot,
        n => Last::Norm(n.to_string(), slash),
    };
    (parent.to_string(), last)
}

/// A parent directory found on the host, and whether its last component exists.
pub(crate) struct Parent {
    /// The directory, canonical.
    pub dir: PathBuf,
    /// The last component.
    pub last: Last,
    /// Metadata of the last component (not followed), if it exists.
    pub meta: Option<std::fs::Metadata>,
}

impl crate::fs::Files {
    /// The parent of `path` (absolute): EACCES outside the allowed paths (before the
    /// lookup, so that the errno tells nothing of the host), ENOENT or ENOTDIR when a
    /// directory leading to it is missing or is not one; then whether the last
    /// component exists.
    pub(crate) fn lookup_parent(&self, path: &str) -> Result<Parent, i64> {
        if self.synthesized(path) {
            return Err(EPERM);
        }
        if !self.allowed_lexically(path) {
            return Err(EACCES);
        }
        let (parent, last) = split_last(path);
        let dir = std::fs::canonicalize(&parent).map_err(|e| crate::fs::io_errno(&e))?;
        if !dir.is_dir() {
            return Err(ENOTDIR);
        }
        let meta = match &last {
            Last::Norm(n, _) => {
                let p = dir.join(n);
                if !self.allowed_path(&p) {
                    return Err(EACCES);
                }
                std::fs::symlink_metadata(p).ok()
            }
            _ => std::fs::symlink_metadata(&dir).ok(),
        };
        Ok(Parent { dir, last, meta })
    }

    /// The host file `path` names for a call that changes it (`user_path_at`,
    /// following a final symbolic link when `follow`): its metadata. EACCES and the
    /// lookup's errors as [`Files::lookup_parent`]; EPERM for synthesized files.
    pub(crate) fn lookup_existing(
        &self,
        path: &str,
        follow: bool,
    ) -> Result<std::fs::Metadata, i64> {
        let p = self.lookup_parent(path)?;
        match (&p.meta, follow) {
            (None, _) => Err(ENOENT),
            (Some(m), true) if m.file_type().is_symlink() => {
                let full = match &p.last {
                    Last::Norm(n, _) => p.dir.join(n),
                    _ => p.dir.clone(),
                };
                let canon = std::fs::canonicalize(&full).map_err(|e| crate::fs::io_errno(&e))?;
                if !self.allowed_path(&canon) {
                    return Err(EACCES);
                }
                std::fs::metadata(canon).map_err(|e| crate::fs::io_errno(&e))
            }
            (Some(m), _) => {
                if let Last::Norm(_, true) = p.last {
                    // A trailing slash needs a directory.
                    if !std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
                        return Err(ENOTDIR);
                    }
                }
                Ok(m.clone())
            }
        }
    }

    /// /dev/null and the synthesized /proc and /sys files.
    fn synthesized(&self, path: &str) -> bool {
        matches!(self.resolve(path), Ok(Resolved::Dev(_) | Resolved::Synthetic(_)))
    }
}

/// Checks of `filename_create` after the parent was found: "." and ".." exist, so does
/// an existing name; a name with a trailing slash is a directory only for mkdir.
fn create_check(p: &Parent, dir: bool) -> Result<(), i64> {
    match &p.last {
        Last::Norm(_, slash) => {
            if p.meta.is_some() {
                return Err(EEXIST);
            }
            if *slash && !dir {
                return Err(ENOENT);
            }
            Err(EROFS)
        }
        _ => Err(EEXIST),
    }
}

/// The errno of creating `path` (`filename_create`, then `mnt_want_write`), a
/// directory when `dir`. A synthesized file exists.
pub(crate) fn create(files: &crate::fs::Files, path: &str, dir: bool) -> i64 {
    match files.lookup_parent(path) {
        Err(EPERM) => EEXIST,
        Err(e) => e,
        Ok(p) => create_check(&p, dir).err().unwrap_or(EROFS),
    }
}

/// `may_mknod`: the file types mknod makes (a directory is EPERM, an unknown type
/// EINVAL), checked before the path is read.
pub(crate) fn may_mknod(mode: u32) -> Result<(), i64> {
    match mode & 0o170000 {
        0 | 0o100000 | 0o020000 | 0o060000 | 0o010000 | 0o140000 => Ok(()),
        0o040000 => Err(EPERM),
        _ => Err(EINVAL),
    }
}

/// The errno of `unlink`/`unlinkat` without AT_REMOVEDIR (`do_unlinkat`): "." and ".."
/// are EISDIR, then the file system is read-only, whether or not the name exists.
pub(crate) fn unlink(files: &crate::fs::Files, path: &str) -> i64 {
    match files.lookup_parent(path) {
        Err(e) => e,
        Ok(Parent { last: Last::Norm(..), .. }) => EROFS,
        Ok(_) => EISDIR,
    }
}

/// The errno of `rmdir`/`unlinkat(AT_REMOVEDIR)` (`do_rmdir`).
pub(crate) fn rmdir(files: &crate::fs::Files, path: &str) -> i64 {
    match files.lookup_parent(path) {
        Err(e) => e,
        Ok(Parent { last: Last::Norm(..), .. }) => EROFS,
        Ok(Parent { last: Last::Dot, .. }) => EINVAL,
        Ok(Parent { last: Last::DotDot, .. }) => ENOTEMPTY,
        Ok(_) => EBUSY,
    }
}

/// renameat2's flags (`do_renameat2`): RENAME_NOREPLACE, RENAME_EXCHANGE and
/// RENAME_WHITEOUT, the exchange with neither of the others.
pub(crate) fn rename_flags_ok(flags: u32) -> bool {
    const NOREPLACE: u32 = 1;
    const EXCHANGE: u32 = 2;
    const WHITEOUT: u32 = 4;
    flags & !(NOREPLACE | EXCHANGE | WHITEOUT) == 0
        && (flags & (NOREPLACE | WHITEOUT) == 0 || flags & EXCHANGE == 0)
}

/// The errno of `rename`, `renameat` and `renameat2` once the flags passed
/// (`do_renameat2`): both parents, EXDEV across mounts (host devices), EBUSY for "."
/// or "..", then EROFS.
pub(crate) fn rename(files: &crate::fs::Files, old: &str, new: &str) -> i64 {
    let o = match files.lookup_parent(old) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let n = match files.lookup_parent(new) {
        Ok(p) => p,
        Err(e) => return e,
    };
    use std::os::unix::fs::MetadataExt;
    let dev = |d: &Path| std::fs::metadata(d).map(|m| m.dev()).ok();
    if dev(&o.dir) != dev(&n.dir) {
        return EXDEV;
    }
    if !matches!(o.last, Last::Norm(..)) || !matches!(n.last, Last::Norm(..)) {
        return EBUSY;
    }
    EROFS
}

/// The errno of `link`/`linkat` (`do_linkat`): the old path must exist, then the new
/// name is created.
pub(crate) fn link(files: &crate::fs::Files, old: &str, new: &str, follow: bool) -> i64 {
    if let Err(e) = files.lookup_existing(old, follow) {
        return e;
    }
    create(files, new, false)
}

/// The errno of a call that changes an existing file's attributes (chmod, chown,
/// utimensat) once its own checks passed.
pub(crate) fn attr(files: &crate::fs::Files, path: &str, follow: bool) -> i64 {
    files.lookup_existing(path, follow).err().unwrap_or(EROFS)
}

/// The errno of `truncate` (`do_sys_truncate`, `vfs_truncate`).
pub(crate) fn truncate(files: &crate::fs::Files, path: &str, len: i64) -> i64 {
    if len < 0 {
        return EINVAL;
    }
    match files.lookup_existing(path, true) {
        Err(e) => e,
        Ok(m) if m.is_dir() => EISDIR,
        Ok(m) if !m.is_file() => EINVAL,
        Ok(_) => EROFS,
    }
}

/// System call numbers of the calls in this file.
#[allow(missing_docs)]
pub(crate) mod nr {
    pub const TRUNCATE: u64 = 76;
    pub const RENAME: u64 = 82;
    pub const MKDIR: u64 = 83;
    pub const RMDIR: u64 = 84;
    pub const LINK: u64 = 86;
    pub const UNLINK: u64 = 87;
    pub const SYMLINK: u64 = 88;
    pub const CHMOD: u64 = 90;
    pub const FCHMOD: u64 = 91;
    pub const CHOWN: u64 = 92;
    pub const FCHOWN: u64 = 93;
    pub const LCHOWN: u64 = 94;
    pub const UTIME: u64 = 132;
    pub const MKNOD: u64 = 133;
    pub const UTIMES: u64 = 235;
    pub const MKDIRAT: u64 = 258;
    pub const MKNODAT: u64 = 259;
    pub const FCHOWNAT: u64 = 260;
    pub const FUTIMESAT: u64 = 261;
    pub const UNLINKAT: u64 = 263;
    pub const RENAMEAT: u64 = 264;
    pub const LINKAT: u64 = 265;
    pub const SYMLINKAT: u64 = 266;
    pub const FCHMODAT: u64 = 268;
    pub const UTIMENSAT: u64 = 280;
    pub const RENAMEAT2: u64 = 316;
    pub const FCHMODAT2: u64 = 452;
}

const AT_FDCWD: i32 = -100;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const AT_REMOVEDIR: u64 = 0x200;
const AT_SYMLINK_FOLLOW: u64 = 0x400;
const AT_EMPTY_PATH: u64 = 0x1000;
const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

impl Machine {
    /// One of the calls of [`nr`]; None for another number.
    pub(crate) fn sys_fs_write(&mut self, c: usize, tid: u32, n: u64, a: [u64; 6]) -> Option<i64> {
        use nr::*;
        let fd = |x: u64| x as i32;
        let r = match n {
            MKDIR | MKDIRAT => {
                let (d, p) = if n == MKDIR { (AT_FDCWD, a[0]) } else { (fd(a[0]), a[1]) };
                self.with_path(c, tid, d, p, |f, path| create(f, path, true))
            }
            MKNOD | MKNODAT => {
                let (d, p, mode) =
                    if n == MKNOD { (AT_FDCWD, a[0], a[1]) } else { (fd(a[0]), a[1], a[2]) };
                match may_mknod(mode as u32) {
                    Ok(()) => self.with_path(c, tid, d, p, |f, path| create(f, path, false)),
                    Err(e) => e,
                }
            }
            UNLINK => self.with_path(c, tid, AT_FDCWD, a[0], unlink),
            RMDIR => self.with_path(c, tid, AT_FDCWD, a[0], rmdir),
            UNLINKAT if a[2] & !AT_REMOVEDIR != 0 => EINVAL,
            UNLINKAT if a[2] & AT_REMOVEDIR != 0 => self.with_path(c, tid, fd(a[0]), a[1], rmdir),
            UNLINKAT => self.with_path(c, tid, fd(a[0]), a[1], unlink),
            RENAME | RENAMEAT | RENAMEAT2 => {
                let (od, op, nd, np, flags) = match n {
                    RENAME => (AT_FDCWD, a[0], AT_FDCWD, a[1], 0),
                    RENAMEAT => (fd(a[0]), a[1], fd(a[2]), a[3], 0),
                    _ => (fd(a[0]), a[1], fd(a[2]), a[3], a[4] as u32),
                };
                if !rename_flags_ok(flags) {
                    EINVAL
                } else {
                    match self.abs_path(c, tid, od, op) {
                        Err(e) => e,
                        Ok(o) => match self.abs_path(c, tid, nd, np) {
                            Err(e) => e,
                            Ok(nw) => rename(&self.k.files, &o, &nw),
                        },
                    }
                }
            }
            LINK | LINKAT => {
                let (od, op, nd, np, flags) = if n == LINK {
                    (AT_FDCWD, a[0], AT_FDCWD, a[1], 0)
                } else {
                    (fd(a[0]), a[1], fd(a[2]), a[3], a[4])
                };
                if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
                    EINVAL
                } else {
                    match self.abs_path(c, tid, od, op) {
                        Err(e) => e,
                        Ok(o) => match self.abs_path(c, tid, nd, np) {
                            Err(e) => e,
                            Ok(nw) => link(&self.k.files, &o, &nw, flags & AT_SYMLINK_FOLLOW != 0),
                        },
                    }
                }
            }
            SYMLINK | SYMLINKAT => {
                let (target, d, p) =
                    if n == SYMLINK { (a[0], AT_FDCWD, a[1]) } else { (a[0], fd(a[1]), a[2]) };
                // getname of the target: EFAULT, and ENOENT when it is empty.
                match self.read_cstr(c, tid, target, 4096) {
                    Err(e) => e,
                    Ok(t) if t.is_empty() => ENOENT,
                    Ok(_) => self.with_path(c, tid, d, p, |f, path| create(f, path, false)),
                }
            }
            CHMOD => self.with_path(c, tid, AT_FDCWD, a[0], |f, p| attr(f, p, true)),
            CHOWN => self.with_path(c, tid, AT_FDCWD, a[0], |f, p| attr(f, p, true)),
            LCHOWN => self.with_path(c, tid, AT_FDCWD, a[0], |f, p| attr(f, p, false)),
            // fchmodat has no flags argument; fchmodat2 takes AT_SYMLINK_NOFOLLOW and
            // AT_EMPTY_PATH (do_fchmodat).
            FCHMODAT => self.with_path(c, tid, fd(a[0]), a[1], |f, p| attr(f, p, true)),
            FCHMODAT2 | FCHOWNAT => {
                let flags = if n == FCHOWNAT { a[4] } else { a[3] };
                if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
                    EINVAL
                } else if flags & AT_EMPTY_PATH != 0
                    && self.read_cstr(c, tid, a[1], 4096).is_ok_and(|p| p.is_empty())
                {
                    self.fd_attr(tid, fd(a[0]), a[0] as i32 == AT_FDCWD)
                } else {
                    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
                    self.with_path(c, tid, fd(a[0]), a[1], |f, p| attr(f, p, follow))
                }
            }
            FCHMOD | FCHOWN => self.fd_attr(tid, fd(a[0]), false),
            TRUNCATE => {
                let len = a[1] as i64;
                self.with_path(c, tid, AT_FDCWD, a[0], |f, p| truncate(f, p, len))
            }
            UTIMENSAT => self.utimensat(c, tid, fd(a[0]), a[1], a[2], a[3]),
            UTIME | UTIMES | FUTIMESAT => {
                let (d, p) = if n == FUTIMESAT { (fd(a[0]), a[1]) } else { (AT_FDCWD, a[0]) };
                let times = if n == FUTIMESAT { a[2] } else { a[1] };
                // utimes/futimesat: each tv_usec within 0..1000000 (do_futimesat).
                let mut b = [0u8; 32];
                let len = if n == UTIME { 16 } else { 32 };
                if times != 0 && self.read_user(c, tid, times, &mut b[..len]).is_err() {
                    EFAULT
                } else if n != UTIME
                    && times != 0
                    && [8, 24].iter().any(|&o| {
                        let mut v = [0u8; 8];
                        v.copy_from_slice(&b[o..o + 8]);
                        !(0..1_000_000).contains(&i64::from_le_bytes(v))
                    })
                {
                    EINVAL
                } else if p == 0 && n == FUTIMESAT {
                    self.fd_attr(tid, d, d == AT_FDCWD)
                } else {
                    self.with_path(c, tid, d, p, |f, p| attr(f, p, true))
                }
            }
            _ => return None,
        };
        Some(-r)
    }

    /// Reads the path `p` relative to `dirfd` and answers with `f`.
    fn with_path(
        &mut self,
        c: usize,
        tid: u32,
        dirfd: i32,
        p: u64,
        f: impl FnOnce(&crate::fs::Files, &str) -> i64,
    ) -> i64 {
        match self.abs_path(c, tid, dirfd, p) {
            Err(e) => e,
            Ok(path) => f(&self.k.files, &path),
        }
    }

    /// fchmod, fchown and the AT_EMPTY_PATH forms on a descriptor: EBADF for a bad one,
    /// EROFS for a host file; files that live inside the guest (pipes, memfds,
    /// sockets...) accept the call, which changes nothing emu records.
    fn fd_attr(&mut self, tid: u32, fd: i32, cwd: bool) -> i64 {
        if cwd {
            let d = self.cwd_of(tid);
            return match self.k.files.lookup_existing(&d.to_string_lossy(), true) {
                Ok(_) => EROFS,
                _ => EACCES,
            };
        }
        let Some(id) = self.fd(tid, fd) else { return EBADF };
        match self.k.files.descs.get(&id).map(|d| &d.obj) {
            Some(Object::Host { .. }) => EROFS,
            Some(Object::Synthetic { .. }) => EPERM,
            _ => 0,
        }
    }

    /// utimensat(2) (fs/utimes.c): the times are read first (EFAULT), both UTIME_OMIT
    /// returns 0 without looking at the path, then the flags, the path, the
    /// nanoseconds (EINVAL) and EROFS.
    fn utimensat(&mut self, c: usize, tid: u32, dirfd: i32, p: u64, times: u64, flags: u64) -> i64 {
        let mut ns = None;
        if times != 0 {
            let mut b = [0u8; 32];
            if self.read_user(c, tid, times, &mut b).is_err() {
                return EFAULT;
            }
            let get = |o: usize| {
                let mut v = [0u8; 8];
                v.copy_from_slice(&b[o..o + 8]);
                i64::from_le_bytes(v)
            };
            let (a, m) = (get(8), get(24));
            if a == UTIME_OMIT && m == UTIME_OMIT {
                return 0;
            }
            ns = Some((a, m));
        }
        let valid = |v: i64| v == UTIME_NOW || v == UTIME_OMIT || (0..1_000_000_000).contains(&v);
        let ns_ok = ns.is_none_or(|(a, m)| valid(a) && valid(m));
        if p == 0 && dirfd != AT_FDCWD {
            // do_utimes_fd: no flags at all.
            if flags != 0 {
                return EINVAL;
            }
            let Some(_) = self.fd(tid, dirfd) else { return EBADF };
            if !ns_ok {
                return EINVAL;
            }
            return self.fd_attr(tid, dirfd, false);
        }
        if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
            return EINVAL;
        }
        if p == 0 {
            return EFAULT;
        }
        let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
        if flags & AT_EMPTY_PATH != 0 && self.read_cstr(c, tid, p, 4096).is_ok_and(|s| s.is_empty())
        {
            if !ns_ok {
                return EINVAL;
            }
            return self.fd_attr(tid, dirfd, dirfd == AT_FDCWD);
        }
        self.with_path(c, tid, dirfd, p, |f, path| match f.lookup_existing(path, follow) {
            Err(e) => e,
            Ok(_) if !ns_ok => EINVAL,
            Ok(_) => EROFS,
        })
    }
}

impl crate::fs::Files {
    /// Whether `path`, with `.` and `..` resolved textually, lies under an allowed path.
    pub(crate) fn allowed_lexically(&self, path: &str) -> bool {
        self.allowed_path(&crate::fs::lexical(Path::new(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_component_is_split_off_as_filename_parentat_does() {
        let n = |s: &str, slash| Last::Norm(s.into(), slash);
        assert_eq!(split_last("/a/b"), ("/a".into(), n("b", false)));
        assert_eq!(split_last("/a/b/"), ("/a".into(), n("b", true)));
        assert_eq!(split_last("/a//b//"), ("/a/".into(), n("b", true)));
        assert_eq!(split_last("/b"), ("/".into(), n("b", false)));
        assert_eq!(split_last("/"), ("/".into(), Last::Root));
        assert_eq!(split_last("//"), ("/".into(), Last::Root));
        assert_eq!(split_last("/a/."), ("/a".into(), Last::Dot));
        assert_eq!(split_last("/a/../"), ("/a".into(), Last::DotDot));
    }

    #[test]
    fn create_checks_come_in_filename_create_order() {
        let p = |last, exists: bool| Parent {
            dir: PathBuf::from("/"),
            last,
            meta: if exists { std::fs::symlink_metadata("/").ok() } else { None },
        };
        let n = |slash| Last::Norm("x".into(), slash);
        assert_eq!(create_check(&p(n(false), true), true), Err(EEXIST));
        assert_eq!(create_check(&p(n(true), true), false), Err(EEXIST));
        assert_eq!(create_check(&p(n(true), false), false), Err(ENOENT));
        assert_eq!(create_check(&p(n(true), false), true), Err(EROFS));
        assert_eq!(create_check(&p(Last::Dot, true), true), Err(EEXIST));
        assert_eq!(create_check(&p(Last::Root, true), true), Err(EEXIST));
    }
}

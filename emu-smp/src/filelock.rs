//! Advisory file locks (fs/locks.c): POSIX record locks (`fcntl` F_GETLK, F_SETLK,
//! F_SETLKW), open-file-description locks (F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW) and
//! `flock(2)` locks.
//!
//! - A POSIX lock belongs to a descriptor table (Linux's `fl_owner` is the caller's
//!   `files_struct`), reports the tgid of the process that set it, is dropped on every
//!   close of any descriptor of the file by that table (`locks_remove_posix` from
//!   `filp_close`) and is not inherited by fork (the child has a table of its own).
//! - An OFD lock belongs to an open file description: shared by dup and fork, dropped
//!   when the description's last reference goes (`locks_remove_file`), reported with pid
//!   -1.
//! - Both kinds live in one list per file and conflict with each other; an owner's
//!   locks never overlap and adjacent ones of the same type are merged
//!   (`posix_lock_inode`): setting a range replaces what the owner held there, splitting
//!   the locks it cuts.
//! - A blocked F_SETLKW of a POSIX owner is recorded with the owner of the lock it waits
//!   for, so that `posix_locks_deadlock` can follow the chain of owners waiting on each
//!   other (at most `MAX_DEADLK_ITERATIONS` steps); OFD requests are never checked.
//! - flock locks are whole-file, owned by the description, and independent of the
//!   others (`flock_lock_inode`: a conversion drops the old lock first).
//!
//! Everything here is pure bookkeeping; the system calls that use it are in
//! `syscall.rs` (`sys_fcntl_lock`, `sys_flock`).

use std::collections::BTreeMap;

/// The largest file offset (`OFFSET_MAX`, `LLONG_MAX`): the end of a lock "to the end of
/// the file".
pub(crate) const OFFSET_MAX: u64 = i64::MAX as u64;

/// Steps of the owner chain `posix_locks_deadlock` follows before giving up
/// (`MAX_DEADLK_ITERATIONS`).
const MAX_DEADLK_ITERATIONS: usize = 10;

/// Which file a lock is on: the inode, as far as emu tells files apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum FileKey {
    /// A host file, by device and inode number.
    Host(u64, u64),
    /// A memfd.
    Memfd(u32),
    /// /dev/null and the other synthesized devices, by minor number.
    Dev(u64),
    /// A pipe (both ends share the inode).
    Pipe(u32),
    /// Any other file: its description is its inode.
    Desc(u32),
}

/// Who owns a record lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Owner {
    /// A POSIX lock: the descriptor table (files_struct) of the process.
    Posix(u32),
    /// An OFD lock: the open file description.
    Ofd(u32),
}

/// A record lock's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// F_RDLCK: shared.
    Read,
    /// F_WRLCK: exclusive.
    Write,
}

/// One held record lock: bytes `start..=end` of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Lock {
    /// Its owner.
    pub owner: Owner,
    /// The tgid that set it (F_GETLK's l_pid; -1 for OFD locks).
    pub pid: i32,
    /// Shared or exclusive.
    pub kind: Kind,
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive; [`OFFSET_MAX`] for "to the end of the file").
    pub end: u64,
}

impl Lock {
    /// `posix_locks_conflict`: another owner, overlapping ranges, and one of the two
    /// is a write lock.
    fn conflicts(&self, other: &Lock) -> bool {
        self.owner != other.owner
            && self.start <= other.end
            && other.start <= self.end
            && (self.kind == Kind::Write || other.kind == Kind::Write)
    }
}

/// A flock(2) lock: the description holding it and whether it is exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Flock {
    desc: u32,
    exclusive: bool,
}

/// Every advisory lock of the machine.
#[derive(Debug, Default)]
pub(crate) struct FileLocks {
    /// Record locks per file, in list order (what F_GETLK reports first).
    posix: BTreeMap<FileKey, Vec<Lock>>,
    /// flock locks per file.
    flocks: BTreeMap<FileKey, Vec<Flock>>,
    /// Tasks asleep in F_SETLKW for a POSIX owner: tid -> (its owner, the owner of the
    /// lock it waits for). The caller drops entries whose task is no longer asleep.
    blocked: BTreeMap<u32, (Owner, Owner)>,
}

impl FileLocks {
    /// F_GETLK: the first lock that conflicts with `req` (`posix_test_lock`).
    pub(crate) fn test(&self, key: FileKey, req: &Lock) -> Option<Lock> {
        self.posix.get(&key)?.iter().find(|l| l.conflicts(req)).copied()
    }

    /// F_SETLK of a lock (`kind` set) or an unlock (`kind` None) over `req`'s range:
    /// the conflicting lock if there is one (nothing changes), else the owner's locks
    /// on the file are updated: the range replaced, cut locks split, adjacent locks of
    /// the same type merged.
    pub(crate) fn set(&mut self, key: FileKey, req: &Lock, unlock: bool) -> Result<(), Lock> {
        let list = self.posix.entry(key).or_default();
        if !unlock {
            if let Some(l) = list.iter().find(|l| l.conflicts(req)) {
                return Err(*l);
            }
        }
        let at = list.iter().position(|l| l.owner == req.owner).unwrap_or(list.len());
        // The owner's locks stay together where its first one was (or go last).
        let mut mine = Vec::new();
        let mut others = Vec::with_capacity(list.len() + 1);
        for (i, l) in list.drain(..).enumerate() {
            if i == at {
                others.push(None);
            }
            if l.owner == req.owner {
                mine.push(l);
            } else {
                others.push(Some(l));
            }
        }
        if !others.contains(&None) {
            others.push(None);
        }
        let mut pieces = Vec::with_capacity(mine.len() + 2);
        for l in mine {
            if l.end < req.start || l.start > req.end {
                pieces.push(l);
                continue;
            }
            if l.start < req.start {
                pieces.push(Lock { end: req.start - 1, ..l });
            }
            if l.end > req.end {
                pieces.push(Lock { start: req.end + 1, ..l });
            }
        }
        if !unlock {
            pieces.push(*req);
        }
        pieces.sort_by_key(|l| l.start);
        let mut merged: Vec<Lock> = Vec::with_capacity(pieces.len());
        for p in pieces {
            match merged.last_mut() {
                Some(m) if m.kind == p.kind && m.end != OFFSET_MAX && m.end + 1 >= p.start => {
                    m.end = m.end.max(p.end);
                }
                _ => merged.push(p),
            }
        }
        let mut out = Vec::with_capacity(others.len() + merged.len());
        for o in others {
            match o {
                Some(l) => out.push(l),
                None => out.append(&mut merged),
            }
        }
        if out.is_empty() {
            self.posix.remove(&key);
        } else {
            *list = out;
        }
        Ok(())
    }

    /// Drops every record lock of `owner`, on one file or on all: a close by a POSIX
    /// owner (`locks_remove_posix`), the last close of a description's OFD locks.
    /// Returns whether any lock went (waiters should look again).
    pub(crate) fn release(&mut self, key: Option<FileKey>, owner: Owner) -> bool {
        let mut any = false;
        self.posix.retain(|k, list| {
            if key.is_none_or(|key| key == *k) {
                let n = list.len();
                list.retain(|l| l.owner != owner);
                any |= list.len() != n;
            }
            !list.is_empty()
        });
        any
    }

    /// Records that `tid`, for POSIX owner `owner`, sleeps until `blocker` drops its
    /// lock (`__locks_insert_block` puts only POSIX requests in `blocked_hash`).
    pub(crate) fn block(&mut self, tid: u32, owner: Owner, blocker: Owner) {
        if matches!(owner, Owner::Posix(_)) {
            self.blocked.insert(tid, (owner, blocker));
        }
    }

    /// `tid` is no longer asleep in F_SETLKW.
    pub(crate) fn unblock(&mut self, tid: u32) {
        self.blocked.remove(&tid);
    }

    /// Forgets the sleeps of tasks for which `asleep` is false.
    pub(crate) fn prune(&mut self, asleep: impl Fn(u32) -> bool) {
        self.blocked.retain(|&tid, _| asleep(tid));
    }

    /// `posix_locks_deadlock`: would `caller` waiting for a lock of `blocker` close a
    /// cycle? Follows what each owner is waiting for (`what_owner_is_waiting_for`).
    /// OFD requests are never refused (they have no process to follow).
    pub(crate) fn deadlock(&self, caller: Owner, blocker: Owner) -> bool {
        if matches!(caller, Owner::Ofd(_)) {
            return false;
        }
        let mut b = blocker;
        for _ in 0..=MAX_DEADLK_ITERATIONS + 1 {
            let Some(&(_, next)) = self.blocked.values().find(|(o, _)| *o == b) else {
                return false;
            };
            if next == caller {
                return true;
            }
            b = next;
        }
        false
    }

    /// flock(2) (`flock_lock_inode`): `op` None unlocks, else takes a shared or
    /// exclusive lock for description `desc`. A conversion drops the old lock first.
    /// `Err(())`: another description holds a conflicting lock (EWOULDBLOCK, or sleep).
    pub(crate) fn flock(&mut self, key: FileKey, desc: u32, op: Option<bool>) -> Result<(), ()> {
        let list = self.flocks.entry(key).or_default();
        let mine = list.iter().position(|f| f.desc == desc);
        match (op, mine) {
            (None, Some(i)) => {
                list.remove(i);
            }
            (None, None) => {}
            (Some(ex), Some(i)) if list[i].exclusive == ex => {}
            (Some(ex), mine) => {
                if let Some(i) = mine {
                    list.remove(i);
                }
                if list.iter().any(|f| f.exclusive || ex) {
                    if list.is_empty() {
                        self.flocks.remove(&key);
                    }
                    return Err(());
                }
                list.push(Flock { desc, exclusive: ex });
            }
        }
        if self.flocks.get(&key).is_some_and(Vec::is_empty) {
            self.flocks.remove(&key);
        }
        Ok(())
    }

    /// The last close of description `desc`: its OFD and flock locks go
    /// (`locks_remove_file`). Returns whether any lock went.
    pub(crate) fn close_description(&mut self, desc: u32) -> bool {
        let mut any = self.release(None, Owner::Ofd(desc));
        self.flocks.retain(|_, list| {
            let n = list.len();
            list.retain(|f| f.desc != desc);
            any |= list.len() != n;
            !list.is_empty()
        });
        any
    }
}

/// fcntl lock commands (x86-64: F_GETLK64 and friends are the same numbers).
pub(crate) mod cmd {
    /// F_GETLK.
    pub const GETLK: u32 = 5;
    /// F_SETLK.
    pub const SETLK: u32 = 6;
    /// F_SETLKW.
    pub const SETLKW: u32 = 7;
    /// F_OFD_GETLK.
    pub const OFD_GETLK: u32 = 36;
    /// F_OFD_SETLK.
    pub const OFD_SETLK: u32 = 37;
    /// F_OFD_SETLKW.
    pub const OFD_SETLKW: u32 = 38;
}

const F_RDLCK: i16 = 0;
const F_WRLCK: i16 = 1;
const F_UNLCK: i16 = 2;

/// `flock64_to_posix_lock`: the byte range `l_whence`/`l_start`/`l_len` name, from the
/// position `pos` and the size `size` of the file. EINVAL for a bad whence or a range
/// that starts before 0, EOVERFLOW for one that ends past [`OFFSET_MAX`].
pub(crate) fn lock_range(
    whence: i16,
    l_start: i64,
    l_len: i64,
    pos: u64,
    size: u64,
) -> Result<(u64, u64), i64> {
    use crate::fs::errno::{EINVAL, EOVERFLOW};
    let max = OFFSET_MAX as i64;
    let base = match whence {
        0 => 0,
        1 => pos.min(OFFSET_MAX) as i64,
        2 => size.min(OFFSET_MAX) as i64,
        _ => return Err(EINVAL),
    };
    if l_start > max - base {
        return Err(EOVERFLOW);
    }
    let mut start = base + l_start;
    if start < 0 {
        return Err(EINVAL);
    }
    let end;
    if l_len > 0 {
        if l_len - 1 > max - start {
            return Err(EOVERFLOW);
        }
        end = start + l_len - 1;
    } else if l_len < 0 {
        if start + l_len < 0 {
            return Err(EINVAL);
        }
        end = start - 1;
        start += l_len;
    } else {
        end = max;
    }
    Ok((start as u64, end as u64))
}

use crate::fs::errno::*;
use crate::fs::Object;
use crate::machine::Machine;
use crate::syscall::Sys;
use crate::task::{State, Wait};

impl crate::fs::Files {
    /// The file a description's locks are on.
    pub(crate) fn lock_key(&self, id: u32) -> Option<FileKey> {
        use std::os::unix::fs::MetadataExt;
        Some(match &self.descs.get(&id)?.obj {
            Object::Host { file, .. } => {
                let m = file.metadata().ok()?;
                FileKey::Host(m.dev(), m.ino())
            }
            Object::Memfd(m) => FileKey::Memfd(*m),
            Object::Dev(d) => FileKey::Dev(d.minor()),
            Object::PipeRead(p) | Object::PipeWrite(p) => FileKey::Pipe(*p),
            _ => FileKey::Desc(id),
        })
    }

    /// Closes one descriptor of table `table` referring to description `id`
    /// (`filp_close`): the table's POSIX locks on the file go (`locks_remove_posix`),
    /// then the reference.
    pub(crate) fn close_fd(&mut self, table: u32, id: u32) {
        if let Some(k) = self.lock_key(id) {
            self.locks.release(Some(k), Owner::Posix(table));
        }
        self.put(id);
    }

    /// i_size for SEEK_END.
    fn lock_size(&self, id: u32) -> u64 {
        self.stat(id).map_or(0, |s| s.size.max(0) as u64)
    }
}

impl Machine {
    /// fcntl F_GETLK, F_SETLK, F_SETLKW and their OFD forms on description `id`
    /// (do_fcntl, fcntl_getlk, fcntl_setlk in fs/locks.c, in their order of checks).
    pub(crate) fn sys_fcntl_lock(
        &mut self,
        c: usize,
        tid: u32,
        id: u32,
        cmd: u32,
        arg: u64,
    ) -> Sys {
        let mut raw = [0u8; 32];
        if self.read_user(c, tid, arg, &mut raw).is_err() {
            return Sys::Ret(-EFAULT);
        }
        let i16_at = |o: usize| i16::from_le_bytes([raw[o], raw[o + 1]]);
        let i64_at = |o: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[o..o + 8]);
            i64::from_le_bytes(b)
        };
        let (l_type, whence, l_start, l_len) = (i16_at(0), i16_at(2), i64_at(8), i64_at(16));
        let l_pid = i32::from_le_bytes([raw[24], raw[25], raw[26], raw[27]]);
        let ofd = matches!(cmd, cmd::OFD_GETLK | cmd::OFD_SETLK | cmd::OFD_SETLKW);
        let get = matches!(cmd, cmd::GETLK | cmd::OFD_GETLK);
        let Some((table, tgid)) = self.k.tasks.get(&tid).map(|t| (t.files, t.tgid)) else {
            return Sys::Ret(-EBADF);
        };
        let Some(d) = self.k.files.descs.get(&id) else { return Sys::Ret(-EBADF) };
        let (pos, acc) = (d.pos, d.flags & 3);
        // fcntl_getlk asks for a lock type before anything else.
        if get && l_type != F_RDLCK && l_type != F_WRLCK {
            return Sys::Ret(-EINVAL);
        }
        let size = if whence == 2 { self.k.files.lock_size(id) } else { 0 };
        let (start, end) = match lock_range(whence, l_start, l_len, pos, size) {
            Ok(r) => r,
            Err(e) => return Sys::Ret(-e),
        };
        // assign_type, at the end of flock_to_posix_lock.
        if !(F_RDLCK..=F_UNLCK).contains(&l_type) {
            return Sys::Ret(-EINVAL);
        }
        // check_fmode_for_setlk: a read lock needs FMODE_READ, a write lock FMODE_WRITE.
        if !get && ((l_type == F_RDLCK && acc == 1) || (l_type == F_WRLCK && acc == 0)) {
            return Sys::Ret(-EBADF);
        }
        if ofd && l_pid != 0 {
            return Sys::Ret(-EINVAL);
        }
        let (owner, pid) =
            if ofd { (Owner::Ofd(id), -1) } else { (Owner::Posix(table), tgid as i32) };
        let kind = if l_type == F_WRLCK { Kind::Write } else { Kind::Read };
        let req = Lock { owner, pid, kind, start, end };
        let Some(key) = self.k.files.lock_key(id) else { return Sys::Ret(-EBADF) };
        if get {
            match self.k.files.locks.test(key, &req) {
                Some(l) => {
                    let t = if l.kind == Kind::Write { F_WRLCK } else { F_RDLCK };
                    raw[0..2].copy_from_slice(&t.to_le_bytes());
                    raw[2..4].copy_from_slice(&0i16.to_le_bytes());
                    raw[8..16].copy_from_slice(&l.start.to_le_bytes());
                    let len = if l.end == OFFSET_MAX { 0 } else { l.end - l.start + 1 };
                    raw[16..24].copy_from_slice(&len.to_le_bytes());
                    raw[24..28].copy_from_slice(&l.pid.to_le_bytes());
                }
                None => raw[0..2].copy_from_slice(&F_UNLCK.to_le_bytes()),
            }
            if self.write_user(c, tid, arg, &raw).is_err() {
                return Sys::Ret(-EFAULT);
            }
            return Sys::Ret(0);
        }
        let locks = &mut self.k.files.locks;
        locks.unblock(tid);
        match locks.set(key, &req, l_type == F_UNLCK) {
            Ok(()) => {
                // Waiters look again (locks_wake_up_blocks when locks go or shrink).
                self.wake_io(c);
                Sys::Ret(0)
            }
            Err(_) if matches!(cmd, cmd::SETLK | cmd::OFD_SETLK) => Sys::Ret(-EAGAIN),
            Err(holder) => {
                let tasks = &self.k.tasks;
                self.k
                    .files
                    .locks
                    .prune(|t| tasks.get(&t).is_some_and(|t| t.state == State::Blocked(Wait::Io)));
                if self.k.files.locks.deadlock(owner, holder.owner) {
                    return Sys::Ret(-EDEADLK);
                }
                self.k.files.locks.block(tid, owner, holder.owner);
                Sys::Block(Wait::Io)
            }
        }
    }

    /// flock(2) (fs/locks.c): LOCK_SH, LOCK_EX, LOCK_UN, with LOCK_NB; LOCK_MAND is
    /// ignored as since Linux 5.18.
    pub(crate) fn sys_flock(&mut self, c: usize, tid: u32, fd: i32, op: u32) -> Sys {
        let Some(id) = self.fd(tid, fd) else { return Sys::Ret(-EBADF) };
        if op & 32 != 0 {
            return Sys::Ret(0);
        }
        let want = match op & !4 {
            1 => Some(false),
            2 => Some(true),
            8 => None,
            _ => return Sys::Ret(-EINVAL),
        };
        let Some(key) = self.k.files.lock_key(id) else { return Sys::Ret(-EBADF) };
        match self.k.files.locks.flock(key, id, want) {
            Ok(()) => {
                self.wake_io(c);
                Sys::Ret(0)
            }
            Err(()) if op & 4 != 0 => Sys::Ret(-EAGAIN),
            Err(()) => Sys::Block(Wait::Io),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: FileKey = FileKey::Memfd(1);

    fn lk(owner: u32, kind: Kind, start: u64, end: u64) -> Lock {
        Lock { owner: Owner::Posix(owner), pid: owner as i32, kind, start, end }
    }

    fn held(l: &FileLocks) -> Vec<(u32, Kind, u64, u64)> {
        l.posix
            .get(&F)
            .map(|v| {
                v.iter()
                    .map(|l| {
                        let (Owner::Posix(o) | Owner::Ofd(o)) = l.owner;
                        (o, l.kind, l.start, l.end)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn ranges_merge_split_and_convert() {
        let mut l = FileLocks::default();
        assert_eq!(l.set(F, &lk(1, Kind::Read, 0, 9), false), Ok(()));
        assert_eq!(l.set(F, &lk(1, Kind::Read, 10, 19), false), Ok(()));
        assert_eq!(held(&l), vec![(1, Kind::Read, 0, 19)], "adjacent same-type locks merge");
        assert_eq!(l.set(F, &lk(1, Kind::Write, 5, 7), false), Ok(()));
        assert_eq!(
            held(&l),
            vec![(1, Kind::Read, 0, 4), (1, Kind::Write, 5, 7), (1, Kind::Read, 8, 19)],
            "a write lock in the middle splits the read lock"
        );
        assert_eq!(l.set(F, &lk(1, Kind::Read, 0, 0), true), Ok(()));
        assert_eq!(l.set(F, &lk(1, Kind::Read, 6, 6), true), Ok(()));
        assert_eq!(
            held(&l),
            vec![
                (1, Kind::Read, 1, 4),
                (1, Kind::Write, 5, 5),
                (1, Kind::Write, 7, 7),
                (1, Kind::Read, 8, 19)
            ]
        );
        assert_eq!(l.set(F, &lk(1, Kind::Read, 0, OFFSET_MAX), false), Ok(()));
        assert_eq!(held(&l), vec![(1, Kind::Read, 0, OFFSET_MAX)]);
        assert_eq!(l.set(F, &lk(1, Kind::Read, 0, OFFSET_MAX), true), Ok(()));
        assert!(held(&l).is_empty());
    }

    #[test]
    fn conflicts_need_another_owner_and_a_writer() {
        let mut l = FileLocks::default();
        assert_eq!(l.set(F, &lk(1, Kind::Read, 0, 9), false), Ok(()));
        assert_eq!(l.set(F, &lk(2, Kind::Read, 5, 14), false), Ok(()), "readers share");
        let w = lk(3, Kind::Write, 12, 12);
        assert_eq!(l.test(F, &w).map(|c| c.owner), Some(Owner::Posix(2)));
        assert_eq!(l.set(F, &w, false).map_err(|c| c.owner), Err(Owner::Posix(2)));
        assert_eq!(l.test(F, &lk(3, Kind::Write, 15, 20)), None);
        assert_eq!(l.set(F, &lk(1, Kind::Write, 0, 4), false), Ok(()), "own locks convert");
        assert_eq!(l.set(F, &lk(1, Kind::Write, 5, 5), false).map_err(|c| c.start), Err(5));
        let ofd = Lock { owner: Owner::Ofd(7), pid: -1, kind: Kind::Read, start: 0, end: 0 };
        assert_eq!(l.test(F, &ofd).map(|c| c.kind), Some(Kind::Write), "OFD meets POSIX");
        assert!(l.release(Some(F), Owner::Posix(1)));
        assert_eq!(l.test(F, &ofd), None);
        assert!(!l.release(Some(F), Owner::Posix(1)));
    }

    #[test]
    fn deadlock_follows_the_chain_of_waiters() {
        let mut l = FileLocks::default();
        let (a, b, c) = (Owner::Posix(1), Owner::Posix(2), Owner::Posix(3));
        // A waits for B; B asking for A's lock closes the cycle.
        l.block(100, a, b);
        assert!(l.deadlock(b, a));
        assert!(!l.deadlock(c, a), "C is not part of it");
        // A waits for B, B for C: C asking for A's lock is a cycle of three.
        l.block(200, b, c);
        assert!(l.deadlock(c, a));
        // OFD requests are never refused.
        assert!(!l.deadlock(Owner::Ofd(5), a));
        l.block(300, Owner::Ofd(5), a);
        assert!(!l.deadlock(a, Owner::Ofd(5)), "OFD waiters are not in blocked_hash");
        l.prune(|tid| tid != 100);
        assert!(!l.deadlock(b, a), "A woke up");
        l.unblock(200);
        assert!(!l.deadlock(c, b));
    }

    #[test]
    fn flock_is_whole_file_per_description() {
        let mut l = FileLocks::default();
        assert_eq!(l.flock(F, 1, Some(false)), Ok(()));
        assert_eq!(l.flock(F, 2, Some(false)), Ok(()));
        assert_eq!(l.flock(F, 3, Some(true)), Err(()));
        assert_eq!(l.flock(F, 1, Some(true)), Err(()), "2 still holds it shared");
        // The failed conversion dropped 1's shared lock.
        assert_eq!(l.flock(F, 2, Some(true)), Ok(()));
        assert_eq!(l.flock(F, 1, Some(false)), Err(()));
        assert!(l.close_description(2));
        assert_eq!(l.flock(F, 1, Some(false)), Ok(()));
        assert_eq!(l.flock(F, 1, None), Ok(()));
        assert!(l.flocks.is_empty());
    }
}

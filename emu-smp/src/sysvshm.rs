//! System V shared memory (ipc/shm.c, ipc/util.c): shmget, shmat, shmdt, shmctl.
//!
//! A segment is a shmem file: the same [`Shm`] pages a memfd has, so attaching it is a
//! shared mapping of those pages (coherent between every attacher, inherited by fork).
//! Ids are built as Linux's `ipc_buildid` (`seq * 32768 + index`, the lowest free
//! index, a sequence number bumped at every creation). The attach count is Linux's:
//! the VMAs mapping the segment (`shm_open` counts every VMA, so a split or a fork
//! adds one), counted when asked. IPC_RMID makes the key private and marks the
//! segment SHM_DEST; it goes when no VMA maps it any more. Times come from the
//! simulated clock. Not modelled: SHM_HUGETLB (an ordinary segment), SHM_LOCK (a no-op
//! for the owner), /proc/sysvipc, the atime/dtime/lpid updates an exit or a munmap
//! makes (shmat and shmdt make theirs).

use crate::fdtypes::Shm;
use crate::fs::errno::*;
use crate::machine::Machine;
use crate::mm::{Backing, Source, PAGE};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// IPC_PRIVATE.
const IPC_PRIVATE: i32 = 0;
const IPC_CREAT: u64 = 0o1000;
const IPC_EXCL: u64 = 0o2000;
const IPC_RMID: i64 = 0;
const IPC_SET: i64 = 1;
const IPC_STAT: i64 = 2;
const IPC_INFO: i64 = 3;
const SHM_LOCK: i64 = 11;
const SHM_UNLOCK: i64 = 12;
const SHM_STAT: i64 = 13;
const SHM_INFO: i64 = 14;
const SHM_STAT_ANY: i64 = 15;
const SHM_RDONLY: u64 = 0o10000;
const SHM_RND: u64 = 0o20000;
const SHM_REMAP: u64 = 0o40000;
const SHM_EXEC: u64 = 0o100000;
/// `shm_perm.mode` bit of a segment IPC_RMID marked.
const SHM_DEST: u32 = 0o1000;
/// `shm_perm.mode` bit of a locked segment.
const SHM_LOCKED: u32 = 0o2000;
/// SEQ_MULTIPLIER (IPCMNI).
const SEQ_MULTIPLIER: i32 = 32768;
/// SHMMNI: most segments.
const SHMMNI: u64 = 4096;
/// SHMMAX and SHMALL defaults (`ULONG_MAX - (1UL << 24)`).
const SHMMAX: u64 = u64::MAX - (1 << 24);

/// One segment.
#[derive(Debug)]
pub(crate) struct Segment {
    key: i32,
    seq: u16,
    uid: u32,
    gid: u32,
    cuid: u32,
    cgid: u32,
    mode: u32,
    size: u64,
    atime: u64,
    dtime: u64,
    ctime: u64,
    cpid: u32,
    lpid: u32,
    pages: Rc<RefCell<Shm>>,
}

/// The IPC namespace's segments.
#[derive(Debug, Default)]
pub(crate) struct ShmIds {
    /// Segments by index.
    segs: BTreeMap<u32, Segment>,
    /// The next sequence number.
    seq: u16,
}

impl ShmIds {
    /// The segment an id names (`ipc_obtain_object_check`): EINVAL if none or if its
    /// sequence number is another (`ipc_checkid`).
    fn get(&self, id: i32) -> Result<(u32, &Segment), i64> {
        if id < 0 {
            return Err(EINVAL);
        }
        let idx = (id % SEQ_MULTIPLIER) as u32;
        let s = self.segs.get(&idx).ok_or(EINVAL)?;
        if i32::from(s.seq) != id / SEQ_MULTIPLIER {
            return Err(EINVAL);
        }
        Ok((idx, s))
    }
}

/// `ipcperms` for the caller `uid`/`gid` wanting `want` (4 read, 2 write, 1 exec),
/// with root's CAP_IPC_OWNER.
fn ipcperms(s: &Segment, uid: u32, gid: u32, want: u32) -> bool {
    if uid == 0 {
        return true;
    }
    let granted = if uid == s.uid || uid == s.cuid {
        s.mode >> 6
    } else if gid == s.gid || gid == s.cgid {
        s.mode >> 3
    } else {
        s.mode
    };
    want & !granted & 7 == 0
}

impl Machine {
    /// The VMAs mapping `pages`, in every address space (`shm_nattch`).
    fn shm_nattch(&self, pages: &Rc<RefCell<Shm>>) -> u64 {
        let mut n = 0;
        for mm in self.k.mms.values() {
            for v in mm.vmas.values() {
                if let Backing::Image { data: Source::Shm(p), .. } = &v.backing {
                    if Rc::ptr_eq(p, pages) {
                        n += 1;
                    }
                }
            }
        }
        n
    }

    /// Removes segments marked SHM_DEST that nothing maps any more (`shm_destroy` at
    /// the last `shm_close`).
    fn shm_reap(&mut self) {
        let dead: Vec<u32> = self
            .k
            .shm
            .segs
            .iter()
            .filter(|(_, s)| s.mode & SHM_DEST != 0 && self.shm_nattch(&s.pages) == 0)
            .map(|(i, _)| *i)
            .collect();
        for i in dead {
            self.k.shm.segs.remove(&i);
        }
    }

    fn now_s(&self, tid: u32) -> u64 {
        crate::syscall::EPOCH_S + self.now_ns(tid) / 1_000_000_000
    }

    /// shmget(2) (`ksys_shmget`, `ipcget`, `newseg`, `shm_more_checks`).
    pub(crate) fn sys_shmget(&mut self, tid: u32, key: i32, size: u64, flg: u64) -> i64 {
        self.shm_reap();
        let (uid, gid) = (self.k.uid, self.k.gid);
        if key != IPC_PRIVATE {
            if let Some((&idx, s)) = self.k.shm.segs.iter().find(|(_, s)| s.key == key) {
                if flg & IPC_CREAT != 0 && flg & IPC_EXCL != 0 {
                    return -EEXIST;
                }
                if s.size < size {
                    return -EINVAL;
                }
                // ipc_check_perms: the mode bits of shmflg asked for.
                let want = ((flg as u32 >> 6) | (flg as u32 >> 3) | flg as u32) & 7;
                if !ipcperms(s, uid, gid, want) {
                    return -EACCES;
                }
                return i64::from(i32::from(s.seq) * SEQ_MULTIPLIER + idx as i32);
            }
            if flg & IPC_CREAT == 0 {
                return -ENOENT;
            }
        }
        // newseg: SHMMIN is 1.
        if !(1..=SHMMAX).contains(&size) {
            return -EINVAL;
        }
        let total: u64 = self.k.shm.segs.values().map(|s| s.size.div_ceil(PAGE)).sum::<u64>()
            + size.div_ceil(PAGE);
        if total > SHMMAX {
            return -ENOSPC;
        }
        if self.k.shm.segs.len() as u64 >= SHMMNI {
            return -ENOSPC;
        }
        let idx = (0..).find(|i| !self.k.shm.segs.contains_key(i)).unwrap_or(0);
        let seq = self.k.shm.seq;
        self.k.shm.seq = if seq >= (i32::MAX / SEQ_MULTIPLIER) as u16 { 0 } else { seq + 1 };
        let pid = self.k.tasks.get(&tid).map_or(0, |t| t.tgid);
        let now = self.now_s(tid);
        self.k.shm.segs.insert(
            idx,
            Segment {
                key,
                seq,
                uid,
                gid,
                cuid: uid,
                cgid: gid,
                mode: flg as u32 & 0o777,
                size,
                atime: 0,
                dtime: 0,
                ctime: now,
                cpid: pid,
                lpid: 0,
                pages: Rc::new(RefCell::new(Shm::with_size(size))),
            },
        );
        i64::from(i32::from(seq) * SEQ_MULTIPLIER + idx as i32)
    }

    /// shmat(2) (`do_shmat`), under mmap_lock: the address checks, the segment and its
    /// permissions, then a shared mapping of its pages.
    pub(crate) fn shmat_call(&mut self, c: usize, tid: u32, id: i32, addr: u64, flg: u64) -> i64 {
        let mut addr = addr;
        let mut flags = 1u64; // MAP_SHARED
        if id < 0 {
            return -EINVAL;
        }
        if addr != 0 {
            if addr & (PAGE - 1) != 0 {
                if flg & SHM_RND != 0 {
                    addr &= !(PAGE - 1);
                    if addr == 0 && flg & SHM_REMAP != 0 {
                        return -EINVAL;
                    }
                } else {
                    return -EINVAL;
                }
            }
            flags |= 0x10; // MAP_FIXED
        } else if flg & SHM_REMAP != 0 {
            return -EINVAL;
        }
        let (mut prot, mut want) = if flg & SHM_RDONLY != 0 { (1u64, 4) } else { (3, 6) };
        if flg & SHM_EXEC != 0 {
            prot |= 4;
            want |= 1;
        }
        self.shm_reap();
        let (uid, gid) = (self.k.uid, self.k.gid);
        let (idx, size, pages) = match self.k.shm.get(id) {
            Err(e) => return -e,
            Ok((_, s)) if !ipcperms(s, uid, gid, want) => return -EACCES,
            Ok((i, s)) => (i, s.size, s.pages.clone()),
        };
        let len = size.div_ceil(PAGE) * PAGE;
        if addr != 0 && flg & SHM_REMAP == 0 {
            let mmid = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
            let free =
                self.k.mms.get(&mmid).is_some_and(|m| m.is_free(addr, addr.wrapping_add(len)));
            if addr.checked_add(len).is_none() || !free {
                return -EINVAL;
            }
        }
        let (now, pid) = (self.now_s(tid), self.k.tasks.get(&tid).map_or(0, |t| t.tgid));
        if addr != 0 {
            // SHM_REMAP over attachments detaches them (shm_close: dtime, lpid).
            let mmid = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
            let over: Vec<Rc<RefCell<Shm>>> = self.k.mms.get(&mmid).map_or(Vec::new(), |m| {
                m.vmas
                    .values()
                    .filter(|v| v.start < addr.saturating_add(len) && v.end > addr)
                    .filter_map(|v| match &v.backing {
                        Backing::Image { data: Source::Shm(p), .. } => Some(p.clone()),
                        _ => None,
                    })
                    .collect()
            });
            for s in self.k.shm.segs.values_mut() {
                if over.iter().any(|p| Rc::ptr_eq(p, &s.pages)) {
                    s.dtime = now;
                    s.lpid = pid;
                }
            }
        }
        let start = self.sys_mmap(c, tid, [addr, len, prot, flags | 0x20, u64::MAX, 0]);
        if start < 0 {
            return start;
        }
        let start = start as u64;
        let backing = Backing::Image { data: Source::Shm(pages), va: start, off: 0, len };
        let mmid = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
        if let Some(mm) = self.k.mms.get_mut(&mmid) {
            mm.set_backing(start, start + len, backing);
        }
        if let Some(s) = self.k.shm.segs.get_mut(&idx) {
            s.atime = now;
            s.lpid = pid;
        }
        start as i64
    }

    /// shmdt(2) (`ksys_shmdt`), under mmap_lock: the segment attached at `addr` is
    /// unmapped, every VMA of it in `[addr, addr + size)`; EINVAL when no attachment
    /// starts there.
    pub(crate) fn shmdt_call(&mut self, c: usize, tid: u32, addr: u64) -> i64 {
        if addr & (PAGE - 1) != 0 {
            return -EINVAL;
        }
        let mmid = self.k.tasks.get(&tid).map_or(0, |t| t.mm);
        let Some(mm) = self.k.mms.get(&mmid) else { return -EINVAL };
        let Some(v) = mm.vmas.get(&addr) else { return -EINVAL };
        let Backing::Image { data: Source::Shm(pages), va, off, .. } = &v.backing else {
            return -EINVAL;
        };
        // The VMA must map the segment from its start, and be a segment's.
        let seg = self
            .k
            .shm
            .segs
            .iter()
            .find(|(_, s)| Rc::ptr_eq(&s.pages, pages))
            .map(|(i, s)| (*i, s.size));
        let Some((idx, size)) = seg else { return -EINVAL };
        if va.wrapping_sub(*off) != addr {
            return -EINVAL;
        }
        let pages = pages.clone();
        let end = addr + size.div_ceil(PAGE) * PAGE;
        let ranges: Vec<(u64, u64)> = mm
            .vmas
            .range(addr..end)
            .filter(|(_, v)| {
                matches!(&v.backing, Backing::Image { data: Source::Shm(p), .. } if Rc::ptr_eq(p, &pages))
            })
            .map(|(_, v)| (v.start, v.end.min(end)))
            .collect();
        for (s, e) in ranges {
            self.sys_munmap(c, tid, s, e - s);
        }
        let (now, pid) = (self.now_s(tid), self.k.tasks.get(&tid).map_or(0, |t| t.tgid));
        if let Some(s) = self.k.shm.segs.get_mut(&idx) {
            s.dtime = now;
            s.lpid = pid;
        }
        self.shm_reap();
        0
    }

    /// shmctl(2) (`ksys_shmctl`).
    pub(crate) fn sys_shmctl(&mut self, c: usize, tid: u32, id: i32, cmd: i32, buf: u64) -> i64 {
        let cmd = i64::from(cmd);
        if cmd < 0 || id < 0 {
            return -EINVAL;
        }
        self.shm_reap();
        let (uid, gid) = (self.k.uid, self.k.gid);
        match cmd {
            IPC_INFO | SHM_INFO => {
                let mut b = vec![0u8; if cmd == IPC_INFO { 72 } else { 48 }];
                let put = |b: &mut Vec<u8>, off: usize, v: u64| {
                    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
                };
                if cmd == IPC_INFO {
                    // struct shminfo64: shmmax, shmmin, shmmni, shmseg, shmall.
                    put(&mut b, 0, SHMMAX);
                    put(&mut b, 8, 1);
                    put(&mut b, 16, SHMMNI);
                    put(&mut b, 24, SHMMNI);
                    put(&mut b, 32, SHMMAX);
                } else {
                    // struct shm_info: used_ids, shm_tot, shm_rss, shm_swp, ...
                    let used = self.k.shm.segs.len() as u32;
                    b[..4].copy_from_slice(&used.to_le_bytes());
                    let tot: u64 = self.k.shm.segs.values().map(|s| s.size.div_ceil(PAGE)).sum();
                    put(&mut b, 8, tot);
                    let rss: u64 =
                        self.k.shm.segs.values().map(|s| s.pages.borrow().resident_pages()).sum();
                    put(&mut b, 16, rss);
                }
                if self.write_user(c, tid, buf, &b).is_err() {
                    return -EFAULT;
                }
                // ipc_get_maxidx: the highest index in use, or 0.
                self.k.shm.segs.keys().next_back().map_or(0, |&i| i64::from(i))
            }
            SHM_STAT | SHM_STAT_ANY | IPC_STAT => {
                let found = if cmd == IPC_STAT {
                    self.k.shm.get(id).map(|(i, _)| i)
                } else {
                    // The id is an index; the answer is the full id.
                    let i = id as u32;
                    if self.k.shm.segs.contains_key(&i) {
                        Ok(i)
                    } else {
                        Err(EINVAL)
                    }
                };
                let idx = match found {
                    Ok(i) => i,
                    Err(e) => return -e,
                };
                let Some(s) = self.k.shm.segs.get(&idx) else { return -EINVAL };
                if cmd != SHM_STAT_ANY && !ipcperms(s, uid, gid, 4) {
                    return -EACCES;
                }
                let nattch = self.shm_nattch(&s.pages);
                let mut b = [0u8; 112];
                let put4 = |b: &mut [u8; 112], off: usize, v: u32| {
                    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
                };
                put4(&mut b, 0, s.key as u32);
                put4(&mut b, 4, s.uid);
                put4(&mut b, 8, s.gid);
                put4(&mut b, 12, s.cuid);
                put4(&mut b, 16, s.cgid);
                put4(&mut b, 20, s.mode);
                b[24..26].copy_from_slice(&s.seq.to_le_bytes());
                for (off, v) in
                    [(48, s.size), (56, s.atime), (64, s.dtime), (72, s.ctime), (88, nattch)]
                {
                    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
                }
                put4(&mut b, 80, s.cpid);
                put4(&mut b, 84, s.lpid);
                let full = i64::from(i32::from(s.seq) * SEQ_MULTIPLIER + idx as i32);
                if self.write_user(c, tid, buf, &b).is_err() {
                    return -EFAULT;
                }
                if cmd == IPC_STAT {
                    0
                } else {
                    full
                }
            }
            IPC_SET | IPC_RMID | SHM_LOCK | SHM_UNLOCK => {
                let mut inb = [0u8; 112];
                if cmd == IPC_SET && self.read_user(c, tid, buf, &mut inb).is_err() {
                    return -EFAULT;
                }
                let idx = match self.k.shm.get(id) {
                    Ok((i, _)) => i,
                    Err(e) => return -e,
                };
                let now = self.now_s(tid);
                let Some(s) = self.k.shm.segs.get_mut(&idx) else { return -EINVAL };
                // ipcctl_obtain_check: the owner, the creator or CAP_SYS_ADMIN; SHM_LOCK
                // and SHM_UNLOCK need read permission or CAP_IPC_LOCK.
                let owner = uid == 0 || uid == s.uid || uid == s.cuid;
                match cmd {
                    IPC_SET if owner => {
                        let get4 = |o: usize| {
                            u32::from_le_bytes([inb[o], inb[o + 1], inb[o + 2], inb[o + 3]])
                        };
                        s.uid = get4(4);
                        s.gid = get4(8);
                        s.mode = (s.mode & !0o777) | (get4(20) & 0o777);
                        s.ctime = now;
                        0
                    }
                    IPC_RMID if owner => {
                        // do_shm_rmid: the key becomes private, the segment goes with
                        // its last attachment.
                        s.key = IPC_PRIVATE;
                        s.mode |= SHM_DEST;
                        self.shm_reap();
                        0
                    }
                    SHM_LOCK | SHM_UNLOCK if uid == 0 || ipcperms(s, uid, gid, 4) => {
                        if cmd == SHM_LOCK {
                            s.mode |= SHM_LOCKED;
                        } else {
                            s.mode &= !SHM_LOCKED;
                        }
                        0
                    }
                    _ => -EPERM,
                }
            }
            _ => -EINVAL,
        }
    }
}

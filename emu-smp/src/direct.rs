//! O_DIRECT, where emu has it.
//!
//! What a guest can open with O_DIRECT is decided as Linux decides it
//! (fs/open.c `do_dentry_open`: the file must have FMODE_CAN_ODIRECT, else EINVAL):
//! - emu's devices (/dev/null, /dev/zero, ...) and the files it synthesizes (/proc,
//!   /sys) are character devices and procfs/sysfs files, which never can: EINVAL;
//! - a host file is opened again on the host with O_DIRECT, and the host's answer is
//!   the guest's ([`crate::fs::DirectFile`]);
//! - memfds are shmem files, which buffer O_DIRECT I/O and pin nothing; pipes take
//!   O_DIRECT as packet mode. Neither is direct I/O, and emu's handling of them is
//!   unchanged.
//!
//! Host files are read-only to the guest (fswrite.rs), so the direct I/O that pins is a
//! read of a host file on a file system that does block direct I/O (ext4, xfs, btrfs:
//! statx reports STATX_DIOALIGN). Linux (`iomap_dio_rw` → `iomap_dio_bio_iter`)
//! checks the alignment of the offset, the length and the buffer first (EINVAL), ends
//! at once at or past the end of the file, and then pins the user's pages a bio at a
//! time (`bio_iov_iter_get_pages` → `iov_iter_extract_user_pages` →
//! `pin_user_pages_fast` with FOLL_WRITE, at most BIO_MAX_VECS = 256 pages a call),
//! the device writes into them, and completion unpins them. emu lets the host kernel
//! make the checks (it reads through the O_DIRECT host descriptor into a host buffer
//! placed like the guest's within its page), then runs the pin calls as GUP-fast walks
//! with FOLL_PIN | FOLL_WRITE over the pages the bytes land in, copies the bytes in
//! (the device's DMA), and charges the unpin of each page. A page the pin cannot get
//! (a read-only buffer) ends the pages there: nothing read is EFAULT, else the bytes
//! of the pages got, in whole 512-byte sectors. Approximations: the pages pinned are
//! those of the bytes returned (Linux pins up to the block after the end of the file,
//! and zero-fills holes by copying without a pin); readv and preadv of an O_DIRECT
//! file, and O_DIRECT set later with F_SETFL, read as buffered I/O.

use crate::fs::errno::*;
use crate::kdata::KObj;
use crate::machine::{fp, Machine};
use crate::path::{KPath, Next};
use crate::syscall::{Sys, MAX_RW_COUNT};
use crate::walker::{GupCont, GupFlags};

/// BIO_MAX_VECS: the pages one bio holds, so one pin call's most.
const PIN_PAGES: u64 = 256;
/// The sector a partial direct read is cut to (a bio carries whole logical blocks;
/// 512 bytes, the logical block size of the disks emu's hosts use).
const SECTOR: u64 = 512;

/// An O_DIRECT read between its pin calls.
#[derive(Clone, Debug)]
pub struct DirectRead {
    /// The open file description.
    pub id: u32,
    /// The guest's buffer.
    pub buf: u64,
    /// The bytes the host read.
    pub data: Vec<u8>,
    /// pread's offset; None for read (the file position moves).
    pub at: Option<u64>,
    /// Pages the bytes land in.
    pub pages: u64,
    /// Pages pinned so far.
    pub pinned: u64,
}

impl Machine {
    /// read(2) or pread64(2) (`n`) of a host file opened with O_DIRECT; None for any
    /// other description.
    pub(crate) fn sys_read_direct(
        &mut self,
        c: usize,
        tid: u32,
        n: u64,
        a: [u64; 6],
    ) -> Option<Sys> {
        let id = self.fd(tid, a[0] as i32)?;
        let (buf, len) = (a[1], a[2].min(MAX_RW_COUNT));
        let at = (n == crate::syscall::nr::PREAD64).then_some(a[3]);
        let (data, pins) = match self.k.files.read_direct(id, buf, len, at)? {
            Ok(v) => v,
            Err(e) => return Some(Sys::Ret(-e)),
        };
        if data.is_empty() {
            return Some(Sys::Ret(0));
        }
        if !pins {
            // A buffered read: copy_to_user.
            if self.write_user(c, tid, buf, &data).is_err() {
                return Some(Sys::Ret(-EFAULT));
            }
            if at.is_none() {
                self.k.files.advance(id, data.len() as u64);
            }
            return Some(Sys::Ret(data.len() as i64));
        }
        let pages = ((buf & 0xfff) + data.len() as u64).div_ceil(4096);
        let op = DirectRead { id, buf, data, at, pages, pinned: 0 };
        Some(match self.direct_pin_call(tid, op.clone()) {
            Some(p) => Sys::Path(p),
            None => self.direct_done(c, tid, op),
        })
    }

    /// The next pin_user_pages_fast of the read: the next pages, at most a bio's.
    fn direct_pin_call(&self, tid: u32, op: DirectRead) -> Option<KPath> {
        let nr = (op.pages - op.pinned).min(PIN_PAGES) as u32;
        let addr = (op.buf & !0xfff) + (op.pinned << 12);
        let flags = GupFlags { write: true, pin: true };
        self.gup_fast_path(tid, addr, nr, flags, GupCont::DirectRead(Box::new(op)))
    }

    /// A pin call ended with `fast` pages from GUP-fast; slow GUP tries the rest (with
    /// FOLL_WRITE: a read-only mapping stops it), then the next call or the end.
    pub(crate) fn direct_walked(
        &mut self,
        c: usize,
        tid: u32,
        mut op: DirectRead,
        fast: u32,
    ) -> Next {
        let want = (op.pages - op.pinned).min(PIN_PAGES);
        let first = (op.buf & !0xfff) + (op.pinned << 12);
        let mut got = u64::from(fast);
        while got < want && self.gup_slow_ok(tid, first + (got << 12), true) {
            got += 1;
        }
        op.pinned += got;
        if got == want && op.pinned < op.pages {
            if let Some(p) = self.direct_pin_call(tid, op.clone()) {
                return Next::Then(p);
            }
        }
        let r = self.direct_done(c, tid, op);
        self.sys_next(c, tid, r)
    }

    /// The device's transfer into the pinned pages, their unpin, the result.
    fn direct_done(&mut self, c: usize, tid: u32, op: DirectRead) -> Sys {
        let covered = (op.pinned << 12).saturating_sub(op.buf & 0xfff);
        let mut n = (op.data.len() as u64).min(covered);
        if n < op.data.len() as u64 {
            n &= !(SECTOR - 1);
        }
        let ok = n > 0 && self.write_user(c, tid, op.buf, &op.data[..n as usize]).is_ok();
        // bio_release_pages → unpin_user_page: a locked sub on each folio's refcount.
        let root = self.k.tasks.get(&tid).and_then(|t| self.k.mms.get(&t.mm)).map(|m| m.root);
        for i in 0..op.pinned {
            let va = (op.buf & !0xfff) + (i << 12);
            let leaf = root.and_then(|r| emu_mmu::PageTables::leaf(&self.hw.mem.phys, r, va));
            if let Some(l) = leaf {
                let pfn = (l.pte & emu_mmu::pte::ADDR) >> 12;
                let x = fp(self.profile.insn.locked) + self.kline_access(c, KObj::Folio(pfn), true);
                self.charge(c, x);
            }
        }
        if !ok {
            return Sys::Ret(-EFAULT);
        }
        if op.at.is_none() {
            self.k.files.advance(op.id, n);
        }
        Sys::Ret(n as i64)
    }
}

//! Decoded basic blocks, keyed by (virtual, physical) start address, so a hot loop is
//! decoded once. Blocks end at any control transfer, at 64 instructions, or at the end
//! of a code page; an instruction that straddles two pages ends its block and ties it to
//! both frames. Writes to a frame holding decoded code, or its release, invalidate every
//! block on it (the memory system reports them, see [`GuestMem::mark_code_page`]).

use crate::decode::{ends_block, Resolver};
use crate::insn::Insn;
use crate::mem::{GuestMem, PageFault};
use crate::timing::InsnCosts;
use iced_x86::{Decoder, DecoderError, DecoderOptions, Instruction};
use rustc_hash::FxHashMap;

/// Most instructions in one block.
const MAX_BLOCK: usize = 64;
/// Bytes copied for decoding one block (64 instructions of at most 15 bytes fit).
const WINDOW: usize = 1024;
/// Entries of the direct-mapped block lookup in front of the hash map.
const FAST: usize = 4096;
const PAGE: u64 = 4096;

/// One decoded basic block.
pub struct Block<M> {
    /// Virtual address of the first instruction.
    pub va: u64,
    /// Physical address of the first instruction.
    pub pa: u64,
    /// The instructions.
    pub insns: Box<[Insn<M>]>,
    frames: [u64; 2],
    valid: bool,
}

/// Decoded-code statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CodeCacheStats {
    /// Blocks decoded.
    pub blocks_decoded: u64,
    /// Instructions decoded.
    pub insns_decoded: u64,
    /// Blocks discarded because their code changed or was unmapped.
    pub blocks_invalidated: u64,
}

/// Decoded blocks shared by the cores of one machine.
pub struct CodeCache<M> {
    resolver: Resolver,
    blocks: Vec<Block<M>>,
    map: FxHashMap<(u64, u64), u32>,
    by_frame: FxHashMap<u64, Vec<u32>>,
    fast: Vec<(u64, u64, u32)>,
    free: Vec<u32>,
    scratch_frames: Vec<u64>,
    decoded: Vec<Instruction>,
    /// Statistics.
    pub stats: CodeCacheStats,
}

impl<M: GuestMem> CodeCache<M> {
    /// An empty cache charging `costs` for the instructions it decodes.
    pub fn new(costs: InsnCosts) -> Self {
        CodeCache {
            resolver: Resolver::new(costs),
            blocks: Vec::new(),
            map: FxHashMap::default(),
            by_frame: FxHashMap::default(),
            fast: vec![(u64::MAX, 0, 0); FAST],
            free: Vec::new(),
            scratch_frames: Vec::new(),
            decoded: Vec::with_capacity(MAX_BLOCK),
            stats: CodeCacheStats::default(),
        }
    }

    /// The block starting at `va` (which translates to `pa`), decoding it if needed.
    #[inline]
    pub fn block(&mut self, va: u64, pa: u64, mem: &mut M) -> Result<u32, PageFault> {
        let slot = (va as usize ^ (va >> 12) as usize) & (FAST - 1);
        let e = self.fast[slot];
        if e.0 == va && e.1 == pa {
            return Ok(e.2);
        }
        let id = match self.map.get(&(va, pa)) {
            Some(&id) => id,
            None => self.decode(va, pa, mem)?,
        };
        self.fast[slot] = (va, pa, id);
        Ok(id)
    }

    /// The instructions of block `id`.
    #[inline(always)]
    pub fn insns(&self, id: u32) -> &[Insn<M>] {
        &self.blocks[id as usize].insns
    }

    fn decode(&mut self, va: u64, pa: u64, mem: &mut M) -> Result<u32, PageFault> {
        let mut buf = [0u8; WINDOW];
        let page_left = (PAGE - (pa & (PAGE - 1))) as usize;
        let n = mem.read_code_phys(pa, &mut buf[..page_left.min(WINDOW)]);
        let at_page_end = n == page_left;
        self.decoded.clear();
        let mut frames = [pa >> 12, pa >> 12];
        {
            let mut dec = Decoder::with_ip(64, &buf[..n], va, DecoderOptions::NONE);
            let mut ins = Instruction::default();
            while self.decoded.len() < MAX_BLOCK {
                if !dec.can_decode() {
                    break;
                }
                let pos = dec.position();
                dec.decode_out(&mut ins);
                if dec.last_error() == DecoderError::NoMoreBytes {
                    if !at_page_end {
                        break;
                    }
                    // Straddles into the next page: decode it from a window over both.
                    let ip = va + pos as u64;
                    let next_va = (ip | (PAGE - 1)) + 1;
                    let next_pa = match mem.fetch_translate(next_va) {
                        Ok(p) => p,
                        Err(pf) if self.decoded.is_empty() => return Err(pf),
                        Err(_) => break,
                    };
                    let mut win = [0u8; 32];
                    let tail = n - pos;
                    win[..tail].copy_from_slice(&buf[pos..n]);
                    let got = mem.read_code_phys(next_pa, &mut win[tail..tail + 16]);
                    let mut d2 = Decoder::with_ip(64, &win[..tail + got], ip, DecoderOptions::NONE);
                    d2.decode_out(&mut ins);
                    frames[1] = next_pa >> 12;
                    mem.mark_code_page(next_pa);
                    self.decoded.push(ins);
                    break;
                }
                self.decoded.push(ins);
                if ends_block(&ins) || ins.is_invalid() {
                    break;
                }
            }
        }
        mem.mark_code_page(pa);
        let insns: Box<[Insn<M>]> =
            self.decoded.iter().map(|ins| self.resolver.resolve::<M>(ins)).collect();
        self.stats.blocks_decoded += 1;
        self.stats.insns_decoded += insns.len() as u64;
        let block = Block { va, pa, insns, frames, valid: true };
        let id = match self.free.pop() {
            Some(id) => {
                self.blocks[id as usize] = block;
                id
            }
            None => {
                self.blocks.push(block);
                (self.blocks.len() - 1) as u32
            }
        };
        self.map.insert((va, pa), id);
        for f in frames.iter().copied().collect::<std::collections::BTreeSet<_>>() {
            self.by_frame.entry(f).or_default().push(id);
        }
        Ok(id)
    }

    /// Discards blocks on the frames the memory system reported as changed.
    pub fn invalidate(&mut self, mem: &mut M) {
        let mut frames = std::mem::take(&mut self.scratch_frames);
        frames.clear();
        mem.take_code_invalidations(&mut frames);
        let mut any = false;
        for f in frames.iter() {
            if let Some(ids) = self.by_frame.remove(f) {
                for id in ids {
                    let b = &mut self.blocks[id as usize];
                    if !b.valid {
                        continue;
                    }
                    b.valid = false;
                    any = true;
                    self.map.remove(&(b.va, b.pa));
                    let other = if b.frames[0] == *f { b.frames[1] } else { b.frames[0] };
                    if other != *f {
                        if let Some(v) = self.by_frame.get_mut(&other) {
                            v.retain(|&x| x != id);
                        }
                    }
                    b.insns = Box::new([]);
                    self.free.push(id);
                    self.stats.blocks_invalidated += 1;
                }
            }
        }
        if any {
            self.fast.iter_mut().for_each(|e| *e = (u64::MAX, 0, 0));
        }
        self.scratch_frames = frames;
    }
}

//! Breadth-first exploration with state hashing, and the report it produces.
//!
//! Every distinct state is stored once (an `FxHashMap` from the state to its index) with
//! the index of the state it was first reached from and the step that reached it, so a
//! violation's trace is rebuilt by replaying the steps from the initial state: BFS order
//! makes it a shortest one.

use crate::mmcid::{Invariant, Model, St, Step};
use rustc_hash::FxHashMap;
use std::collections::VecDeque;
use std::fmt::Write as _;

/// How an exploration ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every reachable state was explored and every invariant holds in all of them.
    Holds,
    /// `max_states` distinct states were stored before the exploration ended: no
    /// violation among them, but the verdict is incomplete.
    BoundReached,
    /// A reachable state breaks an invariant.
    Violation {
        /// Which.
        invariant: Invariant,
        /// What exactly, in that state.
        detail: String,
        /// The shortest trace to it, rendered step by step.
        trace: String,
        /// Steps in the trace.
        depth: usize,
    },
}

/// What an exploration found and how much it explored.
#[derive(Clone, Debug)]
pub struct Report {
    /// The verdict.
    pub outcome: Outcome,
    /// Distinct states stored.
    pub states: u64,
    /// Transitions followed (successor states generated, duplicates included).
    pub transitions: u64,
    /// BFS depth reached (steps from the initial state).
    pub depth: usize,
    /// States with a spinning CPU and no free CID, whose future was explored for I4.
    pub spin_states: u64,
    /// States in which an exiting, inactive task holds a CID of its own (patch 3's
    /// "inconsistent but harmless" state; expected only without patch 3).
    pub inactive_cid_states: u64,
}

impl Report {
    /// Exit-status class: 0 all hold, 2 violation, 3 bound reached.
    pub fn exit_code(&self) -> u8 {
        match self.outcome {
            Outcome::Holds => 0,
            Outcome::Violation { .. } => 2,
            Outcome::BoundReached => 3,
        }
    }
}

pub(crate) fn explore(m: &Model) -> Report {
    let init = m.initial();
    let mut index: FxHashMap<St, u32> = FxHashMap::default();
    // For each state index: (parent index, step, BFS depth).
    let mut parent: Vec<(u32, Option<Step>, u32)> = Vec::new();
    let mut queue: VecDeque<(St, u32)> = VecDeque::new();
    index.insert(m.key(&init), 0);
    parent.push((0, None, 0));
    queue.push_back((init, 0));
    let mut rep = Report {
        outcome: Outcome::Holds,
        states: 1,
        transitions: 0,
        depth: 0,
        spin_states: 0,
        inactive_cid_states: 0,
    };
    let mut acts = Vec::new();
    let mut succ = Vec::new();
    let check = |s: &St, idx: u32, parent: &[(u32, Option<Step>, u32)], rep: &mut Report| {
        if m.inactive_holds_cid(s) {
            rep.inactive_cid_states += 1;
        }
        let bad = m.violation(s).or_else(|| {
            m.stuck_spinner(s).and_then(|cpu| {
                rep.spin_states += 1;
                (!m.can_free_bit(s)).then(|| {
                    (
                        Invariant::LiveLock,
                        format!(
                            "CPU{cpu} spins in mm_get_cid holding rq{cpu}; every CID is taken and \
                             no sequence of the actions the kernel must still take (fixup steps, \
                             spins, schedule-outs of running tasks) frees one"
                        ),
                    )
                })
            })
        });
        bad.map(|(invariant, detail)| {
            let (trace, depth) = render_trace(m, parent, idx);
            Outcome::Violation { invariant, detail, trace, depth }
        })
    };
    if let Some(o) = check(&m.initial(), 0, &parent, &mut rep) {
        rep.outcome = o;
        return rep;
    }
    while let Some((s, idx)) = queue.pop_front() {
        let d = parent[idx as usize].2;
        m.successors(&s, &mut acts, &mut succ);
        for (step, n) in succ.drain(..) {
            rep.transitions += 1;
            let key = m.key(&n);
            if index.contains_key(&key) {
                continue;
            }
            if index.len() >= m.cfg.max_states {
                rep.outcome = Outcome::BoundReached;
                rep.states = index.len() as u64;
                return rep;
            }
            let ni = parent.len() as u32;
            parent.push((idx, Some(step), d + 1));
            rep.depth = rep.depth.max(d as usize + 1);
            if let Some(o) = check(&n, ni, &parent, &mut rep) {
                rep.outcome = o;
                rep.states = index.len() as u64 + 1;
                return rep;
            }
            index.insert(key, ni);
            queue.push_back((n, ni));
        }
    }
    rep.states = index.len() as u64;
    rep
}

/// Replays the steps from the initial state to `idx`, describing each.
fn render_trace(m: &Model, parent: &[(u32, Option<Step>, u32)], idx: u32) -> (String, usize) {
    let mut steps = Vec::new();
    let mut i = idx;
    while let (p, Some(step), _) = parent[i as usize] {
        steps.push(step);
        i = p;
    }
    steps.reverse();
    let mut o = String::new();
    let mut s = m.initial();
    let _ = writeln!(o, "   0. initial state");
    o += &m.render_state(&s);
    for (k, step) in steps.iter().enumerate() {
        let n = m.replay(&s, *step);
        let _ = writeln!(o, "{:4}. {}", k + 1, m.describe(&s, *step, &n));
        o += &m.render_state(&n);
        s = n;
    }
    (o, steps.len())
}

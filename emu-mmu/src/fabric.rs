//! Broadcast TLB invalidation (AMD INVLPGB / TLBSYNC) as a transaction in the data
//! fabric, timed. The invalidation itself is applied to every core's TLBs when it is
//! issued (see [`crate::MemSystem::invlpgb`]); this module decides *when* each core has
//! processed it, what that costs the receivers, and how long TLBSYNC waits.
//!
//! The path of one broadcast issued by core `i` at time `t` (AMD APM vol. 3, INVLPGB:
//! "the invalidation is broadcast to all processors in the system"; TLBSYNC: "waits
//! until all INVLPGB instructions issued by this processor have completed on all
//! processors"):
//!
//! 1. it travels from the core to its socket's fabric (one `invlpgb_hop_cycles`);
//! 2. each socket's fabric serializes broadcasts: it sends a probe to each of its core
//!    complexes (CCX: the cores sharing an LLC) one after another, `invlpgb_ccx_cycles`
//!    apart, and takes the next broadcast only after the last probe of this one. Other
//!    sockets receive the broadcast `invlpgb_socket_cycles` later and fan it out the same
//!    way through their own fabric;
//! 3. in a CCX every core looks the invalidation up in its TLBs, one broadcast at a time
//!    per core, for `invlpgb_receive_cycles`; that time is taken from whatever the core
//!    is running (its translation pipeline is busy);
//! 4. the CCX acknowledges once its slowest core is done; acknowledgements travel back
//!    the way the probe came, and the broadcast has completed when the last one reaches
//!    the issuer.
//!
//! So a broadcast's latency grows with the number of CCXs and sockets it must reach,
//! with the broadcasts already queued at the fabric, and with the receivers' backlog.
//! AMD publishes none of these timings: every one is an estimate in the profile, meant
//! to be swept.

use serde::{Deserialize, Serialize};

/// Timings of the broadcast fabric (all estimates; see the module comment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FabricParams {
    /// One way between a core and its socket's fabric.
    pub hop: u64,
    /// The fabric's spacing between probes to successive CCXs of its socket.
    pub per_ccx: u64,
    /// One way between two sockets' fabrics.
    pub socket: u64,
    /// A receiving core's time to process one broadcast.
    pub receive: u64,
}

/// Where a broadcast went and when it finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broadcast {
    /// When the issuer learns that every core has processed it.
    pub done: u64,
    /// Per core, the interval its translation pipeline spent on it: (start, end).
    pub busy: Vec<(u64, u64)>,
}

/// The fabric's state: when each socket's fabric and each core's TLB are next free.
#[derive(Clone, Debug)]
pub struct Fabric {
    p: FabricParams,
    per_llc: usize,
    per_socket: usize,
    socket_free: Vec<u64>,
    core_free: Vec<u64>,
}

impl Fabric {
    /// A fabric for `cores` cores grouped `per_llc` to a CCX and `per_socket` to a socket
    /// (times in any fixed unit, the same as the times passed in).
    pub fn new(cores: usize, per_llc: usize, per_socket: usize, p: FabricParams) -> Self {
        let per_llc = per_llc.max(1);
        let per_socket = per_socket.max(per_llc);
        let sockets = cores.div_ceil(per_socket).max(1);
        Fabric { p, per_llc, per_socket, socket_free: vec![0; sockets], core_free: vec![0; cores] }
    }

    /// Core `issuer` sends a broadcast at time `t`: returns when it completes and what
    /// each core spent on it, and books the fabric and the receivers.
    pub fn broadcast(&mut self, issuer: usize, t: u64) -> Broadcast {
        let cores = self.core_free.len();
        let home = issuer / self.per_socket;
        let at_home = t + self.p.hop;
        let mut busy = vec![(0, 0); cores];
        let mut done = at_home;
        // The home socket first, then the others in order of their number.
        let order = std::iter::once(home).chain((0..self.socket_free.len()).filter(|&s| s != home));
        for s in order {
            let away = if s == home { 0 } else { self.p.socket };
            let start = (at_home + away).max(self.socket_free[s]);
            let first = s * self.per_socket;
            let last = (first + self.per_socket).min(cores);
            let mut probe = start;
            let mut ccx = first;
            while ccx < last {
                probe += self.p.per_ccx;
                let arrive = probe + self.p.hop;
                let mut slowest = arrive;
                for k in ccx..(ccx + self.per_llc).min(last) {
                    let begin = arrive.max(self.core_free[k]);
                    let end = begin + self.p.receive;
                    self.core_free[k] = end;
                    busy[k] = (begin, end);
                    slowest = slowest.max(end);
                }
                // The CCX's acknowledgement back to its fabric, to the home fabric, and
                // to the issuer.
                done = done.max(slowest + self.p.hop + away + self.p.hop);
                ccx += self.per_llc;
            }
            self.socket_free[s] = probe;
        }
        Broadcast { done, busy }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: FabricParams = FabricParams { hop: 50, per_ccx: 20, socket: 200, receive: 100 };

    #[test]
    fn one_ccx_costs_two_hops_each_way_and_one_lookup() {
        let mut f = Fabric::new(8, 8, 8, P);
        let b = f.broadcast(3, 1000);
        // 1000 + hop + probe + hop, lookup, hop + hop back.
        assert_eq!(b.done, 1000 + 50 + 20 + 50 + 100 + 50 + 50);
        assert!(b.busy.iter().all(|&(s, e)| s == 1120 && e == 1220));
    }

    #[test]
    fn latency_grows_with_the_ccxs_and_sockets_to_reach() {
        let lat = |cores: usize| Fabric::new(cores, 8, 64, P).broadcast(0, 0).done;
        assert!(lat(8) < lat(16));
        assert!(lat(16) < lat(64));
        // A second socket adds its distance both ways to what its CCX takes.
        assert!(lat(64) < lat(72));
        assert_eq!(lat(8) + 2 * P.socket, lat(72));
        assert!(lat(72) < lat(128));
    }

    #[test]
    fn concurrent_broadcasts_queue_at_the_fabric_and_at_the_receivers() {
        let mut f = Fabric::new(32, 8, 32, P);
        let alone = Fabric::new(32, 8, 32, P).broadcast(0, 0).done;
        let first = f.broadcast(0, 0).done;
        let second = f.broadcast(9, 0).done;
        let third = f.broadcast(17, 0).done;
        assert_eq!(first, alone);
        assert!(second > first && third > second, "{first} {second} {third}");
        // Later, with the fabric idle again, the latency is back to the lone one.
        assert_eq!(f.broadcast(0, 1_000_000).done, 1_000_000 + alone);
    }

    #[test]
    fn completion_waits_for_the_slowest_receiver() {
        let mut f = Fabric::new(16, 8, 16, P);
        // Core 12 is still busy with an earlier broadcast's lookup: book it by hand.
        f.core_free[12] = 5_000;
        let b = f.broadcast(0, 0);
        assert_eq!(b.busy[12], (5_000, 5_100));
        assert_eq!(b.done, 5_100 + 2 * P.hop);
        // Everyone else was done long before.
        assert!(b.busy[1].1 < 1_000);
    }
}

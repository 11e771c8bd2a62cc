//! The relay's ports: a configured range cut into RTP/RTCP pairs (RTP on an even port, RTCP on
//! the next, RFC 3550 §11), handed out least recently used first so that a port just freed is
//! not reused while late packets of its old call may still arrive.

use std::collections::{HashSet, VecDeque};

/// A bounded pool of RTP/RTCP port pairs.
#[derive(Debug, Clone)]
pub struct Ports {
    free: VecDeque<u16>,
    used: HashSet<u16>,
    capacity: usize,
    /// Allocations refused because every pair was in use.
    pub exhausted: u64,
}

impl Ports {
    /// The pairs of `first..=last`: every even port `p` with `p + 1` also in range.
    pub fn new(first: u16, last: u16) -> Self {
        let start = first.saturating_add(first % 2);
        let free: VecDeque<u16> = (start..last)
            .step_by(2)
            .filter(|p| p.checked_add(1).is_some_and(|q| q <= last))
            .collect();
        Self {
            capacity: free.len(),
            free,
            used: HashSet::new(),
            exhausted: 0,
        }
    }

    /// An RTP port (its RTCP port is the next one), or `None` when all are in use.
    pub fn alloc(&mut self) -> Option<u16> {
        match self.free.pop_front() {
            Some(p) => {
                self.used.insert(p);
                Some(p)
            }
            None => {
                self.exhausted += 1;
                None
            }
        }
    }

    /// Gives a pair back; a port that is not in use is ignored (never freed twice).
    pub fn release(&mut self, rtp: u16) {
        if self.used.remove(&rtp) {
            self.free.push_back(rtp);
        }
    }

    /// Pairs in use.
    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// Pairs in the range.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_range_is_cut_into_even_odd_pairs_and_fills_up() {
        let mut p = Ports::new(20001, 20010);
        assert_eq!(p.capacity(), 4, "20002/3, 20004/5, 20006/7, 20008/9");
        let got: Vec<u16> = (0..4).filter_map(|_| p.alloc()).collect();
        assert_eq!(got, vec![20002, 20004, 20006, 20008]);
        assert_eq!(p.alloc(), None);
        assert_eq!((p.in_use(), p.exhausted), (4, 1));
        p.release(20004);
        p.release(20004);
        p.release(30000);
        assert_eq!(p.in_use(), 3);
        assert_eq!(p.alloc(), Some(20004));
        assert_eq!(Ports::new(20000, 20000).capacity(), 0);
        assert_eq!(Ports::new(65534, 65535).capacity(), 1);
    }

    #[test]
    fn a_freed_pair_goes_to_the_back_of_the_queue() {
        let mut p = Ports::new(20000, 20007);
        let a = p.alloc().unwrap();
        p.release(a);
        assert_ne!(p.alloc(), Some(a), "the others first");
    }

    proptest! {
        #[test]
        fn never_the_same_pair_twice_and_nothing_leaks(
            first in 1024u16..60000,
            len in 0u16..64,
            ops in proptest::collection::vec(any::<bool>(), 0..200),
        ) {
            let mut p = Ports::new(first, first.saturating_add(len));
            let mut held: Vec<u16> = Vec::new();
            for alloc in ops {
                if alloc {
                    if let Some(port) = p.alloc() {
                        prop_assert!(port % 2 == 0);
                        prop_assert!(!held.contains(&port));
                        held.push(port);
                    } else {
                        prop_assert_eq!(held.len(), p.capacity());
                    }
                } else if let Some(port) = held.pop() {
                    p.release(port);
                }
                prop_assert_eq!(p.in_use(), held.len());
            }
            for port in held.drain(..) {
                p.release(port);
            }
            prop_assert_eq!(p.in_use(), 0);
        }
    }
}

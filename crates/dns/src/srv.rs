//! The order in which to try targets (RFC 2782, "Usage rules"): lowest priority first;
//! among equal priorities, a weighted random draw, repeated over the targets not yet drawn,
//! so that a target of weight 3 comes first three times as often as one of weight 1.

use crate::Target;

/// `targets` in the order to try them. `draw(n)` returns a uniformly drawn number in
/// `0..=n` (the caller's random source; tests pass a seeded one).
pub fn order<'a>(targets: &'a [Target], draw: &mut dyn FnMut(u32) -> u32) -> Vec<&'a Target> {
    order_by(targets, |t| (t.priority, t.weight), draw)
}

/// Anything with a (priority, weight) in the same order: lowest priority first, a weighted
/// draw among equals (trunks of a route are chosen so too).
pub fn order_by<'a, T>(
    items: &'a [T],
    key: impl Fn(&T) -> (u16, u16),
    draw: &mut dyn FnMut(u32) -> u32,
) -> Vec<&'a T> {
    let mut rest: Vec<&T> = items.iter().collect();
    rest.sort_by_key(|t| key(t).0);
    let mut out = Vec::with_capacity(rest.len());
    while let Some(first) = rest.first() {
        let p = key(first).0;
        let n = rest.iter().take_while(|t| key(t).0 == p).count();
        let mut group: Vec<&T> = rest.drain(..n).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|t| u32::from(key(t).1)).sum();
            // RFC 2782 draws in 0..=total, which gives weights 3 and 1 a 4:1 split; drawing
            // in 1..=total keeps the shares exact. Zero weights then come after every
            // weighted item of their priority, in their order.
            let r = if total == 0 {
                0
            } else {
                1 + draw(total - 1).min(total - 1)
            };
            let mut sum = 0u32;
            let i = group
                .iter()
                .position(|t| {
                    sum += u32::from(key(t).1);
                    sum >= r
                })
                .unwrap_or(0);
            out.push(group.remove(i));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Transport;
    use proptest::prelude::*;

    fn t(host: &str, priority: u16, weight: u16) -> Target {
        Target {
            priority,
            weight,
            transport: Transport::Udp,
            port: 5060,
            host: host.into(),
            addrs: vec!["192.0.2.1".parse().unwrap()],
        }
    }

    /// A small seeded generator (xorshift), uniform enough for counting.
    fn seeded(mut s: u64) -> impl FnMut(u32) -> u32 {
        move |n| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % (u64::from(n) + 1)) as u32
        }
    }

    #[test]
    fn weights_three_and_one_split_three_to_one() {
        let ts = [t("a", 10, 3), t("b", 10, 1)];
        let mut draw = seeded(0x9e37_79b9_7f4a_7c15);
        let firsts = (0..10_000)
            .filter(|_| order(&ts, &mut draw)[0].host == "a")
            .count();
        assert!(
            (7_200..=7_800).contains(&firsts),
            "a first {firsts} of 10000"
        );
    }

    #[test]
    fn lower_priority_always_first() {
        let ts = [t("backup", 20, 100), t("main", 10, 1), t("main2", 10, 1)];
        let mut draw = seeded(7);
        for _ in 0..1000 {
            let o = order(&ts, &mut draw);
            assert_eq!(o[2].host, "backup");
        }
    }

    #[test]
    fn zero_weights_come_last_but_are_always_tried() {
        let ts = [t("zero", 1, 0), t("one", 1, 10)];
        let mut draw = seeded(3);
        for _ in 0..2000 {
            let o = order(&ts, &mut draw);
            assert_eq!((o[0].host.as_str(), o.len()), ("one", 2));
        }
        // All zero: every one is still tried.
        let ts = [t("a", 1, 0), t("b", 1, 0)];
        assert_eq!(order(&ts, &mut draw).len(), 2);
    }

    proptest! {
        #[test]
        fn every_target_once_and_priorities_ascending(
            spec in proptest::collection::vec((0u16..4, 0u16..5), 0..12),
            seed in any::<u64>(),
            wild in any::<bool>(),
        ) {
            let ts: Vec<Target> = spec.iter().enumerate().map(|(i, (p, w))| t(&i.to_string(), *p, *w)).collect();
            let mut s = seeded(seed | 1);
            // A draw that ignores its bound must not break anything either.
            let mut d = |n: u32| if wild { u32::MAX } else { s(n) };
            let o = order(&ts, &mut d);
            prop_assert_eq!(o.len(), ts.len());
            let mut hosts: Vec<_> = o.iter().map(|t| t.host.clone()).collect();
            hosts.sort();
            hosts.dedup();
            prop_assert_eq!(hosts.len(), ts.len());
            prop_assert!(o.windows(2).all(|w| w[0].priority <= w[1].priority));
        }
    }
}

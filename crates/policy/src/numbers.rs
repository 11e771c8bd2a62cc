//! Numbers as the fraud policies see them: every dialled number and caller ID normalised to
//! E.164 in the dialling context of the trunk or account it came through, and classified —
//! country and number type — with libphonenumber's metadata (the `phonenumber` crate), not
//! hand-made tables. Named lists build on this: `premium` from the number types, `high-risk`
//! (destinations common in international revenue share fraud) from `data/high-risk.txt`, and
//! `satellite` (satellite and other non-geographic codes) from
//! `data/international-networks.txt`, each file citing its sources.

use std::fmt;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber, Type};

/// Longest dialled string considered (an international prefix, up to 15 digits, separators).
pub const MAX_DIALLED: usize = 40;

/// How the users of a trunk or account dial: their country, whose national and international
/// prefixes libphonenumber knows (`011` and `1` in the US, `00` and `0` in most of Europe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DialContext {
    country: Id,
}

impl DialContext {
    /// The context of a country, by ISO 3166 alpha-2 code (`"US"`, `"GB"`).
    pub fn new(iso: &str) -> Result<Self, NumberError> {
        let country = iso
            .to_ascii_uppercase()
            .parse::<Id>()
            .map_err(|_| NumberError::UnknownCountry)?;
        Ok(Self { country })
    }

    /// Its country's ISO code.
    pub fn country(&self) -> String {
        let id: &str = self.country.as_ref();
        id.to_owned()
    }
}

/// Why a dialled string is not a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    /// Empty, too long, or with characters no number has.
    #[error("not a dialled number")]
    NotDialled,
    /// libphonenumber cannot read it in the context.
    #[error("not a phone number")]
    Unparsable,
    /// A country code no ISO country or network has.
    #[error("unknown country")]
    UnknownCountry,
}

/// What kind of number (libphonenumber's types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NumberKind {
    /// A fixed line.
    FixedLine,
    /// A mobile.
    Mobile,
    /// Either (the plan does not tell, as in the US).
    FixedLineOrMobile,
    /// Free to the caller.
    TollFree,
    /// Premium rate: the callee earns from the call.
    PremiumRate,
    /// Shared cost.
    SharedCost,
    /// VoIP.
    Voip,
    /// Personal numbers (forwarded where the owner says).
    Personal,
    /// Pagers.
    Pager,
    /// Universal access numbers.
    Uan,
    /// Voicemail access.
    Voicemail,
    /// Not in the plan, or not known.
    Unknown,
}

impl NumberKind {
    fn of(t: Type) -> Self {
        match t {
            Type::FixedLine => Self::FixedLine,
            Type::Mobile => Self::Mobile,
            Type::FixedLineOrMobile => Self::FixedLineOrMobile,
            Type::TollFree => Self::TollFree,
            Type::PremiumRate => Self::PremiumRate,
            Type::SharedCost => Self::SharedCost,
            Type::Voip => Self::Voip,
            Type::PersonalNumber => Self::Personal,
            Type::Pager => Self::Pager,
            Type::Uan => Self::Uan,
            Type::Voicemail => Self::Voicemail,
            _ => Self::Unknown,
        }
    }

    /// The name used in configuration and call records (`premium_rate`, `toll_free` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FixedLine => "fixed_line",
            Self::Mobile => "mobile",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::SharedCost => "shared_cost",
            Self::Voip => "voip",
            Self::Personal => "personal",
            Self::Pager => "pager",
            Self::Uan => "uan",
            Self::Voicemail => "voicemail",
            Self::Unknown => "unknown",
        }
    }

    /// On the `premium` named list: numbers where the callee earns from the call (premium
    /// rate, shared cost) or that forward where their owner likes (personal numbers), the
    /// classic revenue-share destinations.
    pub fn is_premium(self) -> bool {
        matches!(self, Self::PremiumRate | Self::SharedCost | Self::Personal)
    }
}

/// A number, normalised and classified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number {
    /// `+` and up to 15 digits.
    pub e164: String,
    /// Its country code (`1`, `44`, `881`).
    pub country_code: u16,
    /// Its country (ISO alpha-2), as libphonenumber places it: none for international
    /// networks such as +881 (satellite) or +882/+883, and none for a number outside every
    /// country's ranges (an unassigned area code).
    pub country: Option<String>,
    /// The main country of its country code (`US` for every +1 number, `GB` for +44): where
    /// a number libphonenumber cannot place belongs as far as the code tells. None for the
    /// codes of international networks.
    pub code_country: Option<String>,
    /// Its type.
    pub kind: NumberKind,
    /// Whether libphonenumber finds it valid in its plan (length and ranges).
    pub valid: bool,
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.e164)
    }
}

/// Whether a character may appear in a dialled string: digits, `+` first, and the visual
/// separators of RFC 3966 (`-`, `.`, `(`, `)`, space).
fn dial_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | '(' | ')' | ' ')
}

/// The numbers already normalised, shared by the policies of one gateway: a call's callee is
/// read by the destination policy, the time windows, the velocity limits, the spend caps and
/// the caller-ID policy, and libphonenumber's parse is the costliest step of a call's
/// policies (tens of microseconds), so each number is parsed once while it stays in the
/// cache. Bounded (`[policy] number_cache`), least recently used out first; its size, hits
/// and misses are on `/metrics`.
#[derive(Debug)]
pub struct NumberCache {
    map: std::sync::Mutex<lru::LruCache<String, Result<Number, NumberError>>>,
    hits: std::sync::atomic::AtomicU64,
    misses: std::sync::atomic::AtomicU64,
}

/// The cache's bound when none is configured.
pub const NUMBER_CACHE: usize = 10_000;

impl NumberCache {
    /// A cache of at most `bound` numbers (at least one).
    pub fn new(bound: usize) -> std::sync::Arc<Self> {
        let cap = std::num::NonZeroUsize::new(bound.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
        std::sync::Arc::new(Self {
            map: std::sync::Mutex::new(lru::LruCache::new(cap)),
            hits: std::sync::atomic::AtomicU64::new(0),
            misses: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// [`normalise`], remembered.
    pub fn normalise(&self, dialled: &str, ctx: DialContext) -> Result<Number, NumberError> {
        use std::sync::atomic::Ordering::Relaxed;
        let id: &str = ctx.country.as_ref();
        let key = format!("{id}:{dialled}");
        let mut map = match self.map.lock() {
            Ok(m) => m,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(r) = map.get(&key) {
            self.hits.fetch_add(1, Relaxed);
            return r.clone();
        }
        self.misses.fetch_add(1, Relaxed);
        let r = normalise(dialled, ctx);
        map.put(key, r.clone());
        r
    }

    /// Numbers held.
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) since it was made.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.hits.load(Relaxed), self.misses.load(Relaxed))
    }
}

/// Normalises what a user dialled (a Request-URI or To user part, a caller ID) in `ctx`: an
/// E.164 number with a `+` stays as it is, a number with the context's international prefix
/// (`011…`, `00…`) or a national one (`0…`, `1…`) is read as its country dials it.
pub fn normalise(dialled: &str, ctx: DialContext) -> Result<Number, NumberError> {
    let d = dialled.trim();
    let plus_only_first = d.char_indices().all(|(i, c)| c != '+' || i == 0);
    if d.is_empty()
        || d.len() > MAX_DIALLED
        || !d.chars().all(dial_char)
        || !plus_only_first
        || !d.chars().any(|c| c.is_ascii_digit())
    {
        return Err(NumberError::NotDialled);
    }
    let n: PhoneNumber =
        phonenumber::parse(Some(ctx.country), d).map_err(|_| NumberError::Unparsable)?;
    let e164 = n.format().mode(Mode::E164).to_string();
    if !e164.starts_with('+') || e164.len() > 16 || !e164[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Unparsable);
    }
    let db = &*phonenumber::metadata::DATABASE;
    let code = n.code().value();
    let code_country = db.by_code(&code).and_then(|regions| {
        regions
            .iter()
            .find(|m| m.is_main_country_for_code())
            .or_else(|| regions.first())
            .map(|m| m.id().to_owned())
            // "001" names the non-geographic entities (+800, +881 …), not a country.
            .filter(|id| id.len() == 2 && id.bytes().all(|b| b.is_ascii_uppercase()))
    });
    Ok(Number {
        code_country,
        country_code: code,
        country: n.country().id().map(|id| {
            let iso: &str = id.as_ref();
            iso.to_owned()
        }),
        kind: NumberKind::of(n.number_type(db)),
        valid: phonenumber::is_valid(&n),
        e164,
    })
}

/// The prefixes of a list file: one `+digits` per line, `#` comments. Lines that are not a
/// prefix are skipped (the shipped files are checked by a test; a user's file will be checked
/// when the configuration reads it).
pub fn prefixes(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|p| {
            p.strip_prefix('+').is_some_and(|d| {
                !d.is_empty() && d.len() <= 15 && d.bytes().all(|b| b.is_ascii_digit())
            })
        })
}

/// The shipped list of international networks (`satellite`): country codes that belong to no
/// country (satellite phones, global networks), where calls cost the most and fraud hides.
/// `data/international-networks.txt`, its ITU source cited there.
pub const INTERNATIONAL_NETWORKS: &str = include_str!("../data/international-networks.txt");

/// The shipped `high-risk` list: destinations common in international revenue share fraud.
/// `data/high-risk.txt`, its sources cited there.
pub const HIGH_RISK: &str = include_str!("../data/high-risk.txt");

/// The prefix lists in force: the shipped ones, or the operator's files in their place
/// (`[policy] lists`), shared by the policies that read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lists {
    high_risk: Vec<String>,
    satellite: Vec<String>,
}

impl Lists {
    /// The lists shipped in `data/`.
    pub fn shipped() -> Self {
        Self {
            high_risk: prefixes(HIGH_RISK).map(str::to_owned).collect(),
            satellite: prefixes(INTERNATIONAL_NETWORKS)
                .map(str::to_owned)
                .collect(),
        }
    }

    /// The shipped lists with `files` ((list name, text) in the shipped files' format: an
    /// E.164 prefix a line, `#` comments) in their place; an error names the list, and a file
    /// with no prefix is one (it would block nothing, silently).
    pub fn with_files(files: &[(String, String)]) -> Result<Self, String> {
        let mut lists = Self::shipped();
        for (name, text) in files {
            let list: Vec<String> = prefixes(text).map(str::to_owned).collect();
            if list.is_empty() {
                return Err(format!(
                    "policy.lists.{name}: the file holds no prefix (+ and digits, one a line)"
                ));
            }
            match NamedList::by_name(name) {
                Some(NamedList::HighRisk) => lists.high_risk = list,
                Some(NamedList::Satellite) => lists.satellite = list,
                _ => {
                    return Err(format!(
                        "policy.lists.{name}: only high-risk and satellite are lists of prefixes"
                    ));
                }
            }
        }
        Ok(lists)
    }

    /// Whether `list` holds `n`.
    pub fn contains(&self, list: NamedList, n: &Number) -> bool {
        let of = |l: &[String]| l.iter().any(|p| n.e164.starts_with(p.as_str()));
        match list {
            NamedList::Premium => n.kind.is_premium(),
            NamedList::HighRisk => of(&self.high_risk),
            NamedList::Satellite => of(&self.satellite),
        }
    }
}

/// The named lists a destination policy can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NamedList {
    /// Premium rate, shared cost and personal numbers, by their type.
    Premium,
    /// [`HIGH_RISK`].
    HighRisk,
    /// [`INTERNATIONAL_NETWORKS`].
    Satellite,
}

impl NamedList {
    /// The list by the name configuration uses (`premium`, `high-risk`, `satellite`).
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "premium" => Some(Self::Premium),
            "high-risk" => Some(Self::HighRisk),
            "satellite" => Some(Self::Satellite),
            _ => None,
        }
    }

    /// Whether the shipped list holds `n`.
    pub fn contains(self, n: &Number) -> bool {
        match self {
            Self::Premium => n.kind.is_premium(),
            Self::HighRisk => prefixes(HIGH_RISK).any(|p| n.e164.starts_with(p)),
            Self::Satellite => prefixes(INTERNATIONAL_NETWORKS).any(|p| n.e164.starts_with(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us() -> DialContext {
        DialContext::new("US").unwrap()
    }

    #[test]
    fn dialled_numbers_become_e164_in_their_context() {
        let gb = DialContext::new("gb").unwrap();
        for (ctx, dialled, e164, country) in [
            (us(), "+1 (212) 555-0100", "+12125550100", Some("US")),
            (us(), "2125550100", "+12125550100", Some("US")),
            (us(), "12125550100", "+12125550100", Some("US")),
            (us(), "011442079460000", "+442079460000", Some("GB")),
            (gb, "02079460000", "+442079460000", Some("GB")),
            (gb, "0012125550100", "+12125550100", Some("US")),
            (us(), "+881631234567", "+881631234567", None),
        ] {
            let n = normalise(dialled, ctx).unwrap();
            assert_eq!(
                (n.e164.as_str(), n.country.as_deref()),
                (e164, country),
                "{dialled}"
            );
        }
    }

    #[test]
    fn numbers_are_classified_by_the_metadata() {
        let premium = normalise("+19005551234", us()).unwrap();
        assert_eq!(premium.kind, NumberKind::PremiumRate);
        assert!(premium.kind.is_premium() && premium.valid);
        let uk_premium = normalise("09012345678", DialContext::new("GB").unwrap()).unwrap();
        assert_eq!(uk_premium.kind, NumberKind::PremiumRate);
        let free = normalise("18005551234", us()).unwrap();
        assert_eq!(free.kind, NumberKind::TollFree);
        assert!(!free.kind.is_premium());
        let sat = normalise("+881631234567", us()).unwrap();
        assert_eq!((sat.country_code, sat.country.as_deref()), (881, None));
        assert!(NamedList::Satellite.contains(&sat));
        assert!(!NamedList::Satellite.contains(&free));
        assert!(NamedList::Premium.contains(&premium) && !NamedList::Premium.contains(&free));
        let cuba = normalise("011537123456", us()).unwrap();
        assert_eq!(cuba.country.as_deref(), Some("CU"));
        assert!(NamedList::HighRisk.contains(&cuba));
        let dr = normalise("+18095551234", us()).unwrap();
        assert!(
            NamedList::HighRisk.contains(&dr),
            "Dominican Republic, +1 809"
        );
        assert!(
            !NamedList::HighRisk.contains(&free),
            "the rest of +1 is not"
        );
        let short = normalise("1234", us()).unwrap();
        assert!(!short.valid);
        // An unassigned area code: no country by the ranges, US by the code.
        let fiction = normalise("+15557654321", us()).unwrap();
        assert_eq!(
            (
                fiction.country.as_deref(),
                fiction.code_country.as_deref(),
                fiction.valid
            ),
            (None, Some("US"), false)
        );
        let toronto = normalise("+14165550100", us()).unwrap();
        assert_eq!(
            (toronto.country.as_deref(), toronto.code_country.as_deref()),
            (Some("CA"), Some("US"))
        );
        assert_eq!(sat.code_country, None);
        let moscow = normalise("+74951234567", us()).unwrap();
        assert_eq!(moscow.code_country.as_deref(), Some("RU"));
    }

    #[test]
    fn what_is_not_a_number_is_refused() {
        for bad in [
            "",
            "   ",
            "alice",
            "1001;ext=1",
            "++12125550100",
            "12+125550100",
            "sip:+12125550100@x",
            "*72",
            "#31#2125550100",
            &"1".repeat(41),
        ] {
            assert!(normalise(bad, us()).is_err(), "{bad:?}");
        }
        assert_eq!(DialContext::new("XX"), Err(NumberError::UnknownCountry));
    }

    #[test]
    fn the_shipped_lists_read_whole() {
        for (text, expect, has) in [(INTERNATIONAL_NETWORKS, 6, "+881"), (HIGH_RISK, 11, "+53")] {
            let list: Vec<&str> = prefixes(text).collect();
            assert!(list.contains(&has), "{list:?}");
            // Every line that is not a comment is a prefix: nothing is skipped.
            let lines = text
                .lines()
                .filter(|l| !l.split('#').next().unwrap_or("").trim().is_empty())
                .count();
            assert_eq!((list.len(), lines), (expect, expect));
        }
        assert_eq!(NamedList::by_name("high-risk"), Some(NamedList::HighRisk));
        assert_eq!(NamedList::by_name("gold"), None);
        assert_eq!(
            prefixes("+1x\n+\n1\n+44 # UK\n").collect::<Vec<_>>(),
            ["+44"]
        );
    }

    proptest! {
        #[test]
        fn normalised_numbers_are_e164(s in "[+]?[0-9 ()\\-.]{0,45}") {
            if let Ok(n) = normalise(&s, us()) {
                prop_assert!(n.e164.starts_with('+'));
                prop_assert!(n.e164.len() <= 16);
                prop_assert!(n.e164[1..].bytes().all(|b| b.is_ascii_digit()));
                prop_assert!(n.e164[1..].starts_with(&n.country_code.to_string()));
            }
        }

        #[test]
        fn any_text_is_answered_without_panic(s in ".{0,64}") {
            let _ = normalise(&s, us());
        }
    }

    #[test]
    fn the_cache_answers_as_normalise_does_and_stays_within_its_bound() {
        let c = NumberCache::new(3);
        for n in [
            "+12125550100",
            "2125550100",
            "+442079460000",
            "alice",
            "+5371234567",
        ] {
            assert_eq!(c.normalise(n, us()), normalise(n, us()), "{n}");
        }
        assert_eq!(c.len(), 3, "filled to its bound, no further");
        assert_eq!(
            c.normalise("+5371234567", us()),
            normalise("+5371234567", us())
        );
        assert_eq!(c.counts(), (1, 5));
        // The context is part of the key: 020… is London only in GB.
        let gb = DialContext::new("GB").unwrap();
        assert_eq!(
            c.normalise("02079460000", gb).unwrap().e164,
            "+442079460000"
        );
        assert_ne!(
            c.normalise("02079460000", us()),
            c.normalise("02079460000", gb)
        );
    }

    #[test]
    fn the_operators_files_replace_the_shipped_lists() {
        let shipped = Lists::shipped();
        let uk = normalise("+442079460000", us()).unwrap();
        let cuba = normalise("+5371234567", us()).unwrap();
        assert!(!shipped.contains(NamedList::HighRisk, &uk));
        assert!(shipped.contains(NamedList::HighRisk, &cuba));
        let mine = Lists::with_files(&[(
            "high-risk".into(),
            "# ours\n+4420   # London, for the test\n".into(),
        )])
        .unwrap();
        assert!(mine.contains(NamedList::HighRisk, &uk));
        assert!(
            !mine.contains(NamedList::HighRisk, &cuba),
            "replaced, not added to"
        );
        let sat = normalise("+881631234567", us()).unwrap();
        assert!(
            mine.contains(NamedList::Satellite, &sat),
            "the other list stays shipped"
        );
        let e = Lists::with_files(&[("high-risk".into(), "# nothing\n".into())]).unwrap_err();
        assert!(e.starts_with("policy.lists.high-risk"), "{e}");
        let e = Lists::with_files(&[("premium".into(), "+1900\n".into())]).unwrap_err();
        assert!(e.starts_with("policy.lists.premium"), "{e}");
    }
}

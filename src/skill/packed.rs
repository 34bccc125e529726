//! A compact binary form of a run of facts, as the appliance keeps them
//! beside its folds (`graph::checkpoints`: each fold checkpoint holds the
//! facts of its interval, each stored state the facts since its last
//! checkpoint), so a refold reads a concept's facts from a few rows
//! instead of from a per-concept index of every delta (issue 23).
//!
//! The form: one version byte (1), then per fact a flags byte (bits 0 to
//! 2 the transition's place in [`Transition::ALL`], bit 3 a grade
//! follows, bit 4 the id is a UUID in its canonical text form and is
//! kept as its 16 bytes), the grade if any, `at` in Unix milliseconds as
//! 8 bytes little-endian, and the id (16 bytes, or a 2-byte
//! little-endian length and its UTF-8 text). About 26 bytes a fact.

use chrono::{DateTime, Utc};

use super::Transition;
use super::state::Fact;

const VERSION: u8 = 1;
const GRADE: u8 = 0b0_1000;
const UUID: u8 = 0b1_0000;
const TRANSITION: u8 = 0b0_0111;

/// `facts`, packed; an empty run packs to nothing at all.
pub fn pack(facts: &[Fact]) -> Vec<u8> {
    if facts.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(1 + facts.len() * 26);
    out.push(VERSION);
    for f in facts {
        let place = Transition::ALL
            .iter()
            .position(|t| *t == f.transition)
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(0);
        let uuid = uuid::Uuid::try_parse(&f.id)
            .ok()
            .filter(|u| u.hyphenated().to_string() == f.id);
        let mut flags = place;
        if f.grade.is_some() {
            flags |= GRADE;
        }
        if uuid.is_some() {
            flags |= UUID;
        }
        out.push(flags);
        if let Some(g) = f.grade {
            out.push(g);
        }
        out.extend_from_slice(&f.at.timestamp_millis().to_le_bytes());
        match uuid {
            Some(u) => out.extend_from_slice(u.as_bytes()),
            None => {
                let id = f.id.as_bytes();
                let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&id[..usize::from(len)]);
            }
        }
    }
    out
}

/// The facts [`pack`] packed, in the same order.
///
/// # Errors
/// Bytes that are not a packed run (a defect, or a damaged file), named.
pub fn unpack(bytes: &[u8]) -> Result<Vec<Fact>, String> {
    let Some((&version, mut rest)) = bytes.split_first() else {
        return Ok(Vec::new());
    };
    if version != VERSION {
        return Err(format!("packed facts of unknown version {version}"));
    }
    let mut out = Vec::new();
    while let Some((&flags, more)) = rest.split_first() {
        rest = more;
        let transition = *Transition::ALL
            .get(usize::from(flags & TRANSITION))
            .ok_or_else(|| format!("packed fact with unknown transition {}", flags & 7))?;
        let grade = if flags & GRADE != 0 {
            let (&g, more) = rest.split_first().ok_or("packed fact cut in its grade")?;
            rest = more;
            Some(g)
        } else {
            None
        };
        let (at, more) = rest
            .split_first_chunk::<8>()
            .ok_or("packed fact cut in its time")?;
        rest = more;
        let at = DateTime::<Utc>::from_timestamp_millis(i64::from_le_bytes(*at))
            .ok_or("packed fact with a time out of range")?;
        let id = if flags & UUID != 0 {
            let (id, more) = rest
                .split_first_chunk::<16>()
                .ok_or("packed fact cut in its id")?;
            rest = more;
            uuid::Uuid::from_bytes(*id).hyphenated().to_string()
        } else {
            let (len, more) = rest
                .split_first_chunk::<2>()
                .ok_or("packed fact cut in its id's length")?;
            let len = usize::from(u16::from_le_bytes(*len));
            let id = more.get(..len).ok_or("packed fact cut in its id")?;
            rest = &more[len..];
            String::from_utf8(id.to_vec()).map_err(|_| "packed fact with an id not UTF-8")?
        };
        out.push(Fact {
            id,
            transition,
            at,
            grade,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_fact() -> impl Strategy<Value = Fact> {
        (
            0usize..5,
            proptest::option::of(1u8..=4),
            -10_000_000_000_000i64..10_000_000_000_000,
            prop_oneof![
                any::<u128>().prop_map(|u| uuid::Uuid::from_u128(u).to_string()),
                // Ids stored before the wire insisted on UUIDs, or in
                // another case: kept as their text.
                any::<u128>().prop_map(|u| uuid::Uuid::from_u128(u).to_string().to_uppercase()),
                "[a-z0-9é-]{0,40}",
            ],
        )
            .prop_map(|(t, grade, at, id)| Fact {
                id,
                transition: Transition::ALL[t],
                at: DateTime::<Utc>::from_timestamp_millis(at).expect("in range"),
                grade,
            })
    }

    proptest! {
        #[test]
        fn facts_unpack_as_they_were_packed(facts in proptest::collection::vec(arb_fact(), 0..40)) {
            let packed = pack(&facts);
            prop_assert_eq!(unpack(&packed).expect("unpacks"), facts);
        }

        #[test]
        fn damaged_bytes_are_refused_not_misread(
            facts in proptest::collection::vec(arb_fact(), 1..8),
            cut in any::<proptest::sample::Index>(),
        ) {
            let packed = pack(&facts);
            // Cut anywhere inside the last fact: never a shorter run
            // read as if whole.
            let last = pack(&facts[..facts.len() - 1]).len().max(1);
            let at = last + cut.index(packed.len() - last);
            if at < packed.len() && at > last {
                prop_assert!(unpack(&packed[..at]).is_err());
            }
        }
    }

    #[test]
    fn a_uuid_costs_26_bytes_and_a_version_it_does_not_know_is_refused() {
        let f = Fact {
            id: uuid::Uuid::now_v7().to_string(),
            transition: Transition::CheckPassed,
            at: Utc::now(),
            grade: Some(3),
        };
        assert_eq!(pack(std::slice::from_ref(&f)).len(), 1 + 26);
        assert!(pack(&[]).is_empty());
        assert_eq!(unpack(&[]).expect("empty"), Vec::new());
        let err = unpack(&[2, 0]).expect_err("version 2");
        assert!(err.contains("version 2"), "{err}");
    }
}

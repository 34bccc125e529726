//! The sync push body (the privacy boundary, SECURITY.md P1) from the raw
//! request bytes: no input panics the parser; what it accepts holds only
//! concept ids the org knows (shipped, its own `x-active`, and its own
//! `x-retired` only for facts dated before its retirement), dates from 2020
//! to a day after `now` and grades on checks alone; and accepted deltas,
//! written back out, parse to the same.
#![no_main]

use std::sync::LazyLock;

use aiworklab::skill::Catalogue;
use aiworklab::catalogue::KnownIds;
use aiworklab::skill::{Delta, Transition};
use aiworklab::sync::wire::{MAX_DELTAS, parse_push};
use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(|| {
    Catalogue::builtin().expect("the shipped catalogue is valid (its tests say so)")
});

/// 2026-11-23T08:00:00Z: a fixed clock, so a crash reproduces.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_420_800, 0).expect("a date in range")
}

/// When the org's `x-retired` concept was retired: ten days before `now`.
fn retired_at() -> DateTime<Utc> {
    now() - Duration::days(10)
}

/// 2020-01-01T00:00:00Z, the earliest date a delta may carry.
fn earliest() -> DateTime<Utc> {
    DateTime::from_timestamp(1_577_836_800, 0).expect("a date in range")
}

/// A delta as a device would send it.
fn render(d: &Delta) -> Value {
    let mut v = json!({
        "id": d.id.to_string(),
        "concept": d.concept,
        "transition": d.transition.as_str(),
        "at": d.at.to_rfc3339(),
    });
    if let Some(g) = d.grade {
        v["grade"] = json!(g);
    }
    v
}

fn check(d: &Delta, now: DateTime<Utc>) {
    match d.concept.as_str() {
        "x-active" => {}
        "x-retired" => assert!(d.at < retired_at(), "a fact after retirement: {d:?}"),
        other => assert!(CATALOGUE.contains(other), "unknown concept {other:?}"),
    }
    assert!(d.at >= earliest(), "{d:?}");
    assert!(d.at <= now + Duration::days(1), "{d:?}");
    match d.transition {
        Transition::CheckFailed => assert_eq!(d.grade, Some(1), "{d:?}"),
        Transition::CheckPassed => assert!(matches!(d.grade, Some(2..=4)), "{d:?}"),
        _ => assert_eq!(d.grade, None, "{d:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let known = KnownIds::shipped(&CATALOGUE)
        .with_custom("x-active", None)
        .with_custom("x-retired", Some(retired_at()));
    let now = now();
    let Ok(deltas) = parse_push(data, &known, now) else {
        return;
    };
    assert!(deltas.len() <= MAX_DELTAS);
    for d in &deltas {
        check(d, now);
    }
    let again = json!({ "deltas": deltas.iter().map(render).collect::<Vec<_>>() }).to_string();
    assert_eq!(
        parse_push(again.as_bytes(), &known, now),
        Ok(deltas),
        "{again}"
    );
});

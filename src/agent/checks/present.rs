//! How a check and its result read in the terminal, and the snooze
//! durations `agent snooze` takes.

use chrono::Duration;

use super::{Answered, Asked};

/// The question, its options numbered, and how to answer.
pub fn question(asked: &Asked, concept_title: &str) -> String {
    let c = &asked.check;
    let mut out = String::new();
    if let Some(note) = &asked.note {
        out.push_str(&format!(
            "(From the question bank in this binary: {note}.)\n"
        ));
    }
    let from = if c.source == "generated" {
        ", written by your org's model"
    } else {
        ""
    };
    out.push_str(&format!(
        "Check on {concept_title} ({}){from}:\n\n{}\n\n",
        c.concept, c.prompt
    ));
    match &c.options {
        Some(options) if c.kind == "choice" => {
            for (i, o) in options.iter().enumerate() {
                out.push_str(&format!("  {}. {o}\n", i + 1));
            }
            out.push_str(&format!(
                "\nYour answer (1 to {}; Enter skips): ",
                options.len()
            ));
        }
        _ => out.push_str("Your answer, in a few words (Enter skips): "),
    }
    out
}

/// The grade, the feedback, the right answer and the explanation, and what
/// was recorded.
pub fn result(a: &Answered) -> String {
    let g = &a.graded;
    let label = match g.grade {
        1 => "again",
        2 => "hard",
        3 => "good",
        _ => "easy",
    };
    let by = if g.graded_by == "model" {
        "graded by your org's model"
    } else {
        "graded by the check's key"
    };
    let mut out = format!("\n{} (grade {} {label}, {by})\n", g.feedback, g.grade);
    if !g.right {
        out.push_str(&format!("The answer: {}\n", g.right_answer));
    }
    out.push_str(&format!("Why: {}\n", g.explanation));
    out.push_str(&format!(
        "Recorded {} with grade {} ({}).\n",
        a.recorded.transition.as_str(),
        a.recorded.grade,
        a.recorded.id
    ));
    out
}

/// The longest snooze.
pub const MAX_SNOOZE: Duration = Duration::days(30);

/// Reads a snooze length: a whole number with `m`, `h` or `d` (`30m`,
/// `2h`, `1d`), at most 30 days. `None` for `off`.
///
/// # Errors
/// A message naming the accepted forms.
pub fn snooze_length(raw: &str) -> Result<Option<Duration>, String> {
    let raw = raw.trim().to_ascii_lowercase();
    if raw == "off" {
        return Ok(None);
    }
    let bad = || {
        format!(
            "`{}` is not a snooze length: give a whole number with m, h or d (30m, 2h, 1d), at most 30d, or `off`",
            raw.chars().take(32).collect::<String>()
        )
    };
    let split = raw.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = raw.split_at(split);
    let n: i64 = n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
    let d = match unit {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    if d > MAX_SNOOZE {
        return Err(bad());
    }
    Ok(Some(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snooze_lengths_are_minutes_hours_or_days_up_to_thirty_days() {
        assert_eq!(snooze_length("30m"), Ok(Some(Duration::minutes(30))));
        assert_eq!(snooze_length(" 2H "), Ok(Some(Duration::hours(2))));
        assert_eq!(snooze_length("1d"), Ok(Some(Duration::days(1))));
        assert_eq!(snooze_length("30d"), Ok(Some(Duration::days(30))));
        assert_eq!(snooze_length("off"), Ok(None));
        for bad in [
            "",
            "d",
            "0h",
            "-1h",
            "31d",
            "721h",
            "2w",
            "1.5h",
            "h2",
            "99999999999999d",
            "9999999999999999999m",
            "999999999999999m",
        ] {
            let e = snooze_length(bad).expect_err(bad);
            assert!(e.contains("30m, 2h, 1d"), "{bad}: {e}");
        }
    }
}

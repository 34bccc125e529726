//! Writing a check with the model: the prompt (from a concept's slug,
//! title, summary and prerequisites only; never anything of an engineer),
//! the JSON schema of the answer, and its strict parser. A generated check
//! is multiple choice, so it is graded by its key without a model, and it
//! must meet the bank's own limits (`crate::checks::bank`): 4 or 5
//! distinct options, one right one, lengths, and the concept it was asked
//! about. Anything else is refused and the bank answers instead.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::schema::{Field, Property, Schema};
use super::{ModelError, Purpose, Request, shape_error};
use crate::checks::bank::{MAX_EXPLANATION, MAX_OPTION, MAX_OPTIONS, MAX_PROMPT, MIN_OPTIONS};
use crate::checks::normalise;

/// The version of the prompt below; its hash is stored with every check
/// generated from it. Change it with the wording.
pub const PROMPT_VERSION: &str = "check-v2";

const SYSTEM: &str = "You write comprehension checks for software engineers. \
A check tests understanding of one concept, not trivia: one question that ends \
with a question mark, four options that each answer it in a few words (exactly \
one of them right, the others plausible but wrong), and a short explanation of \
why the right option is right. Answer with JSON only, following the schema you \
are given. `correct` is the zero-based index of the right option.";

/// One check written out, so that a small model sees what is wanted
/// instead of echoing the field names back. Its concept is not in the
/// shipped catalogue; an org concept of the same slug is asked without it.
const EXAMPLE_SLUG: &str = "shell-pipes";
const EXAMPLE: &str = "An example, for the concept `shell-pipes`:\n\
{\"concept\": \"shell-pipes\", \"prompt\": \"In `grep error log.txt | wc -l`, \
what does `wc -l` read?\", \"options\": [\"The lines grep printed\", \
\"The whole of log.txt\", \"The exit status of grep\", \"Nothing until grep \
has finished and saved a file\"], \"correct\": 0, \"explanation\": \"A pipe \
connects grep's standard output to wc's standard input, so wc counts only the \
matching lines, as grep writes them.\"}\n\n";

const USER: &str = "{example}Write one multiple-choice check for the concept `{slug}`.\n\
Title: {title}\n\
Summary: {summary}\n\
Prerequisites: {prerequisites}\n\
Set `concept` to `{slug}`.";

/// Shortest question accepted, in characters.
const MIN_PROMPT: usize = 15;

/// Fewest words (runs of letters or digits) in a question.
const MIN_PROMPT_WORDS: usize = 4;

/// Fewest words in an explanation.
const MIN_EXPLANATION_WORDS: usize = 3;

/// The SHA-256 (hex) of the prompt version and its text, stored as the
/// provenance of each generated check.
pub fn prompt_sha256() -> String {
    let mut h = Sha256::new();
    for part in [PROMPT_VERSION, SYSTEM, EXAMPLE, USER] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// What the model is told about a concept: nothing else.
#[derive(Debug, Clone)]
pub struct Brief {
    pub slug: String,
    pub title: String,
    pub summary: String,
    /// Prerequisites by title (slug when it has none).
    pub prerequisites: Vec<String>,
}

/// The request that asks for one check about `brief`.
pub fn request(brief: &Brief) -> Request {
    let prerequisites = if brief.prerequisites.is_empty() {
        "none".to_string()
    } else {
        brief.prerequisites.join("; ")
    };
    let example = if brief.slug == EXAMPLE_SLUG {
        ""
    } else {
        EXAMPLE
    };
    let user = USER
        .replace("{example}", example)
        .replace("{slug}", &brief.slug)
        .replace("{title}", &brief.title)
        .replace("{summary}", &brief.summary)
        .replace("{prerequisites}", &prerequisites);
    Request {
        purpose: Purpose::Generate,
        system: SYSTEM.to_string(),
        user,
        schema_name: "comprehension_check",
        schema: schema(&brief.slug),
    }
}

/// The JSON schema of a generated check about `slug`, in the order the
/// model writes it: the concept (naming the topic first), the question,
/// its options, then which option is right and why. Its lengths are the
/// bank's, so `max_tokens` covers the longest check the bank accepts.
pub fn schema(slug: &str) -> Schema {
    Schema::object(vec![
        Property {
            name: "concept",
            field: Field::Exactly(slug.to_string()),
        },
        Property {
            name: "prompt",
            field: Field::Text {
                min: MIN_PROMPT,
                max: MAX_PROMPT,
            },
        },
        Property {
            name: "options",
            field: Field::Texts {
                min_items: MIN_OPTIONS,
                max_items: MAX_OPTIONS,
                min: 1,
                max: MAX_OPTION,
            },
        },
        Property {
            name: "correct",
            field: Field::Integer {
                min: 0,
                max: i64::try_from(MAX_OPTIONS - 1).unwrap_or(i64::MAX),
            },
        },
        Property {
            name: "explanation",
            field: Field::Text {
                min: 1,
                max: MAX_EXPLANATION,
            },
        },
    ])
}

/// A generated check, validated, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    pub concept: String,
    pub prompt: String,
    pub options: Vec<String>,
    pub correct: usize,
    pub explanation: String,
}

/// Parses and validates the model's answer to a request about `slug`.
///
/// # Errors
/// [`ModelError::BadAnswer`] naming the rule broken (never quoting text).
pub fn parse(value: Value, slug: &str) -> Result<Draft, ModelError> {
    let bad = |m: String| ModelError::BadAnswer(m);
    let mut d: Draft = serde_json::from_value(value).map_err(|e| bad(shape_error(&e)))?;
    if d.concept != slug {
        return Err(bad(format!("it is about another concept than `{slug}`")));
    }
    d.prompt = d.prompt.trim().to_string();
    d.explanation = d.explanation.trim().to_string();
    for o in &mut d.options {
        *o = o.trim().to_string();
    }
    text("prompt", &d.prompt, MIN_PROMPT, MAX_PROMPT, true)?;
    text("explanation", &d.explanation, 1, MAX_EXPLANATION, true)?;
    if !(MIN_OPTIONS..=MAX_OPTIONS).contains(&d.options.len()) {
        return Err(bad(format!(
            "it has {} options; a check has {MIN_OPTIONS} to {MAX_OPTIONS}",
            d.options.len()
        )));
    }
    let mut seen = HashSet::new();
    for (i, o) in d.options.iter().enumerate() {
        text(&format!("option {i}"), o, 1, MAX_OPTION, false)?;
        if !seen.insert(normalise(o)) {
            return Err(bad(format!("option {i} repeats an earlier option")));
        }
    }
    readable(&d)?;
    if d.correct >= d.options.len() {
        return Err(bad(format!(
            "correct is {}, not the index of one of its {} options",
            d.correct,
            d.options.len()
        )));
    }
    Ok(d)
}

/// What the schema cannot say and a person reading the check needs: the
/// question is a question, every option says something and none of them
/// repeats the question, the explanation explains. A small model that
/// loses the thread echoes its instructions back (`git-branches:
/// description` as the question, the same text numbered as the options,
/// `,` as one of them): refused here, the bank answers instead.
fn readable(d: &Draft) -> Result<(), ModelError> {
    let bad = |m: String| ModelError::BadAnswer(m);
    let words = |t: &str| normalise(t).split(' ').filter(|w| !w.is_empty()).count();
    if words(&d.prompt) < MIN_PROMPT_WORDS || !d.prompt.contains('?') {
        return Err(bad(format!(
            "its prompt is not a question: it needs at least {MIN_PROMPT_WORDS} words and a question mark"
        )));
    }
    let question = normalise(&d.prompt);
    for (i, o) in d.options.iter().enumerate() {
        let o = normalise(o);
        if o.is_empty() {
            return Err(bad(format!("option {i} has no letters or digits")));
        }
        if o.contains(&question) {
            return Err(bad(format!("option {i} repeats the question")));
        }
    }
    if words(&d.explanation) < MIN_EXPLANATION_WORDS {
        return Err(bad(format!(
            "its explanation has fewer than {MIN_EXPLANATION_WORDS} words"
        )));
    }
    Ok(())
}

fn text(field: &str, value: &str, min: usize, max: usize, lines: bool) -> Result<(), ModelError> {
    let n = value.chars().count();
    if n < min || n > max {
        return Err(ModelError::BadAnswer(format!(
            "its {field} has {n} characters; {min} to {max} are allowed"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(lines && (c == '\n' || c == '\t')))
    {
        return Err(ModelError::BadAnswer(format!(
            "its {field} holds control characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Value {
        json!({
            "concept": "git-rebase",
            "prompt": "What does an interactive rebase let you do?",
            "options": ["Rewrite a series of commits", "Push to two remotes", "Sign tags", "Clone shallowly"],
            "correct": 0,
            "explanation": "It replays commits and lets you edit, squash, reorder or drop them.",
        })
    }

    #[test]
    fn a_schema_valid_check_is_accepted_trimmed() {
        let mut v = good();
        v["options"][1] = json!("  Push to two remotes ");
        let d = parse(v, "git-rebase").expect("valid");
        assert_eq!(d.options[1], "Push to two remotes");
        assert_eq!(d.correct, 0);
    }

    #[test]
    fn every_broken_rule_is_refused() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(&str, Change)> = vec![
            (
                "another concept",
                Box::new(|v| v["concept"] = json!("git-merge")),
            ),
            (
                "options",
                Box::new(|v| v["options"] = json!(["a", "b", "c"])),
            ),
            (
                "repeats",
                Box::new(|v| v["options"][2] = json!("rewrite a SERIES of commits.")),
            ),
            ("correct is 4", Box::new(|v| v["correct"] = json!(4))),
            ("schema", Box::new(|v| v["correct"] = json!(-1))),
            ("schema", Box::new(|v| v["extra"] = json!(1))),
            (
                "schema",
                Box::new(|v| {
                    v.as_object_mut().map(|o| o.remove("explanation"));
                }),
            ),
            ("prompt has", Box::new(|v| v["prompt"] = json!("Why?"))),
            (
                "prompt has",
                Box::new(|v| v["prompt"] = json!("x".repeat(MAX_PROMPT + 1))),
            ),
            ("option 3 has", Box::new(|v| v["options"][3] = json!(" "))),
            ("control", Box::new(|v| v["options"][0] = json!("a\u{7}b"))),
            (
                "not a question",
                Box::new(|v| v["prompt"] = json!("Interactive rebase lets you edit.")),
            ),
            (
                "not a question",
                Box::new(|v| v["prompt"] = json!("Interactive rebase?")),
            ),
            (
                "option 1 has no letters or digits",
                Box::new(|v| v["options"][1] = json!(", -")),
            ),
            (
                "option 2 repeats the question",
                Box::new(|v| {
                    v["options"][2] = json!("What does an interactive rebase let you do? [2]");
                }),
            ),
            (
                "explanation has fewer than 3 words",
                Box::new(|v| v["explanation"] = json!("Squash.")),
            ),
        ];
        for (why, change) in cases {
            let mut v = good();
            change(&mut v);
            let e = parse(v, "git-rebase").expect_err(why).to_string();
            assert!(e.contains(why), "{why}: {e}");
        }
    }

    /// The example the model is shown keeps every rule it is held to, and
    /// is left out when the concept asked about is its own.
    #[test]
    fn the_example_is_a_valid_check_and_not_shown_for_its_own_concept() {
        let json = EXAMPLE
            .split_once('\n')
            .map(|(_, j)| j.trim())
            .expect("example");
        let v: Value = serde_json::from_str(json).expect("the example is JSON");
        parse(v, EXAMPLE_SLUG).expect("the example is a valid check");
        let own = request(&Brief {
            slug: EXAMPLE_SLUG.into(),
            title: "Pipes".into(),
            summary: "Connecting programs.".into(),
            prerequisites: vec![],
        });
        assert!(own.user.starts_with("Write one"), "{}", own.user);
    }

    /// What SmolLM2-135M wrote for `git-branches` in the air-gapped
    /// walk-through (docs/checks.md): schema-valid, and no check at all.
    #[test]
    fn an_echo_of_the_instructions_is_refused() {
        let echo = json!({
            "concept": "git-branches",
            "prompt": "git-branches: description",
            "options": [
                "git-branches: description",
                "git-branches: description: [1]",
                "git-branches: description: [2]",
                "git-branches: description: [3]",
                ",",
            ],
            "correct": 0,
            "explanation": "git-branches: description",
        });
        let e = parse(echo.clone(), "git-branches")
            .expect_err("an echo")
            .to_string();
        assert!(e.contains("not a question"), "{e}");
        let mut asked = echo;
        asked["prompt"] = json!("What is git-branches: description?");
        let e = parse(asked, "git-branches")
            .expect_err("an echo")
            .to_string();
        assert!(e.contains("option 4 has no letters or digits"), "{e}");
    }

    /// The longest check the schema (and so the bank) allows fits in
    /// `max_tokens`: every string at its limit, five options, each written
    /// with JSON's separators; at one character a token it is not cut off.
    #[test]
    fn max_tokens_covers_the_longest_check_the_schema_allows() {
        let slug = "git-rebase";
        // Exactly `n` characters of words and question marks.
        let filled = |n: usize| {
            let mut t: String = "Word? ".repeat(n / 6 + 1).chars().take(n - 1).collect();
            t.push('x');
            t
        };
        let longest = json!({
            "concept": slug,
            "prompt": filled(MAX_PROMPT),
            "options": (0..MAX_OPTIONS).map(|i| format!("{i}").repeat(MAX_OPTION)).collect::<Vec<_>>(),
            "correct": MAX_OPTIONS - 1,
            "explanation": filled(MAX_EXPLANATION),
        });
        let d = parse(longest.clone(), slug).expect("the longest check is valid");
        assert_eq!(d.options.len(), MAX_OPTIONS);
        let pretty = serde_json::to_string(&longest)
            .expect("json")
            .replace("\":", "\": ")
            .replace("\",\"", "\", \"")
            .replace(",\"", ", \"")
            .chars()
            .count();
        let r = request(&Brief {
            slug: slug.into(),
            title: "Rebase".into(),
            summary: "Replaying commits.".into(),
            prerequisites: vec![],
        });
        let tokens = r.schema.max_tokens() as usize;
        assert!(
            tokens * super::super::schema::MIN_CHARS_PER_TOKEN > pretty,
            "max_tokens {tokens} does not cover {pretty} characters"
        );
        // The old fixed limit did not.
        assert!(700 < pretty);
        // The schema sent carries those same limits.
        let sent = serde_json::to_value(&r.schema).expect("json");
        assert_eq!(sent["properties"]["prompt"]["maxLength"], MAX_PROMPT);
        assert_eq!(sent["properties"]["options"]["maxItems"], MAX_OPTIONS);
        assert_eq!(
            sent["properties"]["options"]["items"]["maxLength"],
            MAX_OPTION
        );
        assert_eq!(
            sent["properties"]["explanation"]["maxLength"],
            MAX_EXPLANATION
        );
    }

    #[test]
    fn the_schema_lists_the_question_before_its_answer() {
        let text = serde_json::to_string(&schema("git-rebase")).expect("json");
        let props = &text[text.find("\"properties\"").expect("properties")..];
        let at = |k: &str| props.find(&format!("\"{k}\":")).expect(k);
        let order = ["concept", "prompt", "options", "correct", "explanation"];
        assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
        assert!(
            text.contains(r#""required":["concept","prompt","options","correct","explanation"]"#),
            "{text}"
        );
    }

    #[test]
    fn the_prompt_carries_the_concept_only_and_its_hash_is_stable() {
        let r = request(&Brief {
            slug: "git-rebase".into(),
            title: "Rebase".into(),
            summary: "Replaying commits.".into(),
            prerequisites: vec!["Commits".into()],
        });
        assert!(r.user.contains("`git-rebase`") && r.user.contains("Prerequisites: Commits"));
        let schema = serde_json::to_value(&r.schema).expect("json");
        assert_eq!(schema["properties"]["concept"]["enum"][0], "git-rebase");
        assert!(r.user.starts_with(EXAMPLE), "the example comes first");
        assert_eq!(prompt_sha256().len(), 64);
        assert_eq!(prompt_sha256(), prompt_sha256());
    }
}

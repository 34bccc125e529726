//! Tagging throughput: MB of source text per second on one core, per
//! language, over the labelled corpus's snippets (`tests/fixtures/tagging/`),
//! two ways:
//!
//! - **whole file**: the snippets concatenated into one file per language
//!   and repeated to ~2 MiB (so the parse covers a realistic file size
//!   rather than one snippet at a time), beside the floor of reading the
//!   same text once (a byte sum). The repetition flatters a tagger that
//!   stops looking for a rule once it has matched: every copy after the
//!   first shows nothing new.
//! - **one snippet per text**: each snippet tagged as its own text, as a
//!   hook tags what changed (a few KB per event), over every snippet of
//!   the language, repeated to ~2 MiB in all. Nothing here profits from
//!   the repetition: each text starts with nothing found. Beside it, the
//!   baseline of tree-sitter parsing each of the same snippets alone
//!   (what a tagger that parses every byte cannot go below), and the
//!   ratio of the two.
//!
//! Run: `cargo bench --bench tagging` (under `cargo test` it runs one
//! round on a small text as a smoke check).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use aiworklab::agent::tag::{Lang, Tagger, grammar};

/// The snippets of one corpus file. Snippets marked as another language
/// (TSX, JS) are left out so every text is one language.
fn snippets(name: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tagging")
        .join(name);
    let text = std::fs::read_to_string(path).expect("corpus file");
    let mut out = Vec::new();
    for chunk in text.split("\n=== ").skip(1) {
        if chunk.lines().any(|l| l.starts_with("lang:")) {
            continue;
        }
        if let Some((_, code)) = chunk.split_once("\n---\n") {
            out.push(format!("{code}\n"));
        }
    }
    out
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let target = if smoke { 16 * 1024 } else { 2 * 1024 * 1024 };
    let rounds = if smoke { 1 } else { 5 };
    let mut tagger = Tagger::builtin().expect("catalogue");
    println!(
        "| language | text | floor (byte sum) | whole file | MB/s | one snippet per text | MB/s | parsing each snippet alone | MB/s | tagging ÷ parsing |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut total_bytes = 0usize;
    let (mut total_secs, mut total_each_secs, mut total_parse_secs) = (0f64, 0f64, 0f64);
    for (name, lang) in [
        ("rust.txt", Lang::Rust),
        ("python.txt", Lang::Python),
        ("go.txt", Lang::Go),
        ("typescript.txt", Lang::TypeScript),
        ("sql.txt", Lang::Sql),
    ] {
        let pieces = snippets(name);
        let one: String = pieces.concat();
        let mut text = String::with_capacity(target + one.len());
        while text.len() < target {
            text.push_str(&one);
        }
        let copies = text.len() / one.len();
        // Warm the language's index and parser.
        black_box(tagger.tag_code(lang, &one));
        let mut best_floor = f64::MAX;
        let mut best = f64::MAX;
        let mut best_each = f64::MAX;
        let mut best_parse = f64::MAX;
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&grammar(lang)).expect("grammar");
        for _ in 0..rounds {
            let t = Instant::now();
            black_box(text.bytes().fold(0u64, |a, b| a.wrapping_add(u64::from(b))));
            best_floor = best_floor.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let found = tagger.tag_code(lang, black_box(&text));
            best = best.min(t.elapsed().as_secs_f64());
            assert!(!found.is_empty());
            // The same bytes, one snippet per text.
            let t = Instant::now();
            let mut any = 0usize;
            for _ in 0..copies {
                for piece in &pieces {
                    any += tagger.tag_code(lang, black_box(piece)).len();
                }
            }
            best_each = best_each.min(t.elapsed().as_secs_f64());
            assert!(any > 0);
            // The baseline: the same snippets, each parsed alone.
            let t = Instant::now();
            for _ in 0..copies {
                for piece in &pieces {
                    black_box(parser.parse(black_box(piece), None));
                }
            }
            best_parse = best_parse.min(t.elapsed().as_secs_f64());
        }
        let mb = text.len() as f64 / 1e6;
        total_bytes += text.len();
        total_secs += best;
        total_each_secs += best_each;
        total_parse_secs += best_parse;
        println!(
            "| {lang:?} | {:.2} MB | {:.2} ms | {:.1} ms | {:.1} | {:.1} ms | {:.1} | {:.1} ms | {:.1} | {:.2}x |",
            mb,
            best_floor * 1e3,
            best * 1e3,
            mb / best,
            best_each * 1e3,
            mb / best_each,
            best_parse * 1e3,
            mb / best_parse,
            best_each / best_parse
        );
    }
    let mb = total_bytes as f64 / 1e6;
    println!(
        "| all | {mb:.2} MB | | {:.1} ms | {:.1} | {:.1} ms | {:.1} | {:.1} ms | {:.1} | {:.2}x |",
        total_secs * 1e3,
        mb / total_secs,
        total_each_secs * 1e3,
        mb / total_each_secs,
        total_parse_secs * 1e3,
        mb / total_parse_secs,
        total_each_secs / total_parse_secs
    );
}

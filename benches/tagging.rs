//! Tagging throughput: MB of source text per second on one core, per
//! language, over the labelled corpus's snippets (`tests/fixtures/tagging/`)
//! concatenated into one file per language and repeated to ~2 MiB (so the
//! parse covers a realistic file size rather than one snippet at a time),
//! beside the floor of reading the same text once (a byte sum).
//!
//! Run: `cargo bench --bench tagging` (under `cargo test` it runs one
//! round on a small text as a smoke check).

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use aiworklab::agent::tag::{Lang, Tagger};

fn corpus(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tagging")
        .join(name);
    let text = std::fs::read_to_string(path).expect("corpus file");
    let mut out = String::new();
    for chunk in text.split("\n=== ").skip(1) {
        // Snippets marked as another language (TSX, JS) are left out of
        // the TypeScript file so the whole text is one language.
        if chunk.lines().any(|l| l.starts_with("lang:")) {
            continue;
        }
        if let Some((_, code)) = chunk.split_once("\n---\n") {
            out.push_str(code);
            out.push('\n');
        }
    }
    out
}

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let target = if smoke { 16 * 1024 } else { 2 * 1024 * 1024 };
    let rounds = if smoke { 1 } else { 5 };
    let mut tagger = Tagger::builtin().expect("catalogue");
    println!("| language | text | floor (byte sum) | tagging | MB/s |");
    println!("|---|---|---|---|---|");
    let mut total_bytes = 0usize;
    let mut total_secs = 0f64;
    for (name, lang) in [
        ("rust.txt", Lang::Rust),
        ("python.txt", Lang::Python),
        ("go.txt", Lang::Go),
        ("typescript.txt", Lang::TypeScript),
        ("sql.txt", Lang::Sql),
    ] {
        let one = corpus(name);
        let mut text = String::with_capacity(target + one.len());
        while text.len() < target {
            text.push_str(&one);
        }
        // Warm the language's index and parser.
        black_box(tagger.tag_code(lang, &one));
        let mut best_floor = f64::MAX;
        let mut best = f64::MAX;
        for _ in 0..rounds {
            let t = Instant::now();
            black_box(text.bytes().fold(0u64, |a, b| a.wrapping_add(u64::from(b))));
            best_floor = best_floor.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            let found = tagger.tag_code(lang, black_box(&text));
            best = best.min(t.elapsed().as_secs_f64());
            assert!(!found.is_empty());
        }
        let mb = text.len() as f64 / 1e6;
        total_bytes += text.len();
        total_secs += best;
        println!(
            "| {lang:?} | {:.2} MB | {:.2} ms | {:.1} ms | {:.1} |",
            mb,
            best_floor * 1e3,
            best * 1e3,
            mb / best
        );
    }
    println!(
        "| all | {:.2} MB | | {:.1} ms | {:.1} |",
        total_bytes as f64 / 1e6,
        total_secs * 1e3,
        total_bytes as f64 / 1e6 / total_secs
    );
}

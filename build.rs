//! The build script: the build's provenance (`build/provenance.rs`: the
//! git commit and build date behind `aiworklab --version`), and the shipped
//! catalogue (`config/catalogue/*.toml`) turned into JSON in `OUT_DIR`,
//! value for value, which `skill::catalogue` embeds: reading TOML cost the
//! kernel's hook milliseconds on every event, JSON a fraction of that. A
//! file that is not valid TOML fails the build, naming it.

use std::path::Path;

#[path = "build/provenance.rs"]
mod provenance;

fn main() {
    provenance::emit();
    catalogue_as_json();
}

/// Each `config/catalogue/NAME.toml` as `OUT_DIR/catalogue/NAME.json`.
fn catalogue_as_json() {
    let src = Path::new("config/catalogue");
    println!("cargo:rerun-if-changed={}", src.display());
    let out =
        Path::new(&std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("catalogue");
    std::fs::create_dir_all(&out).expect("OUT_DIR/catalogue can be made");
    let entries = std::fs::read_dir(src).expect("config/catalogue is readable");
    for entry in entries {
        let path = entry.expect("config/catalogue is readable").path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value: serde_json::Value = toml_edit::de::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid TOML: {e}", path.display()));
        let json = serde_json::to_string(&value).expect("a JSON value renders");
        let stem = path.file_stem().expect("a file name").to_string_lossy();
        std::fs::write(out.join(format!("{stem}.json")), json).expect("OUT_DIR is writable");
    }
}

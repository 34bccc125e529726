//! The `aiworklab` binary: parse the command line and dispatch.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    aiworklab::cli::main()
}

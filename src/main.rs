//! The `tidyplex` binary: see [`tidyplex::cli`].

fn main() {
    std::process::exit(tidyplex::cli::main());
}

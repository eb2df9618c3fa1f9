//! The `tidyplex` binary: see [`tidyplex::cli`].

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(tidyplex::cli::main());
}

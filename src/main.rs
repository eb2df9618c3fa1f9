fn main() {
    std::process::exit(tidyplex::cli::main());
}

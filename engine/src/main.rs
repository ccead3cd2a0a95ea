//! The `squall` binary: a thin shell over the library.

fn main() {
    std::process::exit(squall::cli::main());
}

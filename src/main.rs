fn main() {
    eprintln!("ser: not yet wired");
    std::process::exit(1);
}

//! `serctl` — talks to a running ser; everything is in `ser::serctl`.
fn main() {
    std::process::exit(ser::serctl::main_entry());
}

//! `ser` — argv in, exit status out; everything else is in the library.
fn main() {
    // Lossy: a non-UTF-8 argument must not panic before we can say so.
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    std::process::exit(ser::server::start::main_entry(args));
}
